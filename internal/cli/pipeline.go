package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

	"github.com/lambda-microservice/lambda/internal/cli/client"
	"github.com/lambda-microservice/lambda/internal/cli/source"
	"github.com/lambda-microservice/lambda/internal/cli/ui"
)

func (a *app) pipelineCmd() *cobra.Command {
	return group("pipeline", "Deploy and manage pipelines",
		a.pipelineDeployCmd(), a.pipelineListCmd(), a.pipelineGetCmd(), a.pipelineRemoveCmd())
}

func (a *app) pipelineDeployCmd() *cobra.Command {
	var name string
	c := &cobra.Command{
		Use:   "deploy FILE",
		Short: "Create a pipeline from a YAML or JSON file, or add a version when it changed",
		Long: `Create a pipeline from its definition in a YAML (.yaml, .yml) or JSON (.json) file, or
add a version when the definition changed; says "created etl v1", "updated etl v2" or
"unchanged etl v2". The name is --name, else the definition's "name", else the file
name. YAML is converted to the JSON definition as it is (see DESIGN.md §9 for steps).` + exitCodesHelp,
		Example: `  lambda pipeline deploy etl.yaml
  lambda pipeline deploy approve.json --name approve`,
		Args: args(cobra.ExactArgs(1)),
	}
	c.Flags().StringVar(&name, "name", "", "pipeline name (default: the definition's, else from the file name)")
	c.RunE = a.run(func(ctx context.Context, args []string) error {
		def, pname, err := readPipeline(args[0], name)
		if err != nil {
			return err
		}
		cl, err := a.client()
		if err != nil {
			return err
		}
		p, created, err := cl.PutPipeline(ctx, pname, def)
		verb := "updated"
		switch {
		case client.IsStatus(err, 404):
			p, err = cl.CreatePipeline(ctx, def)
			verb = "created"
		case err == nil && !created:
			verb = "unchanged"
		}
		if err != nil {
			return err
		}
		if ok, err := a.structured(p); ok {
			return err
		}
		a.printf("%s %s\n", verb, ui.FunctionVersion(p.Name, p.Version))
		return nil
	})
	return c
}

// readPipeline reads a definition file as the JSON object to send, with its name.
func readPipeline(path, name string) (json.RawMessage, string, error) {
	ext := strings.ToLower(filepath.Ext(path))
	if ext != ".yaml" && ext != ".yml" && ext != ".json" {
		return nil, "", usagef("%s: unknown extension %q: want .yaml, .yml or .json", path, ext)
	}
	raw, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, "", usagef("%s: no such file", path)
	}
	if err != nil {
		return nil, "", usageError{err}
	}
	if ext != ".json" {
		if raw, err = yaml.YAMLToJSON(raw); err != nil {
			return nil, "", usagef("%s: not valid YAML: %v", path, err)
		}
	}
	var def map[string]json.RawMessage
	if err := json.Unmarshal(raw, &def); err != nil || def == nil {
		return nil, "", usagef("%s: want a pipeline definition (an object with name and steps)", path)
	}
	if name == "" {
		_ = json.Unmarshal(def["name"], &name)
	}
	if name == "" {
		if name, err = source.NameFromFile(path); err != nil {
			return nil, "", usageError{err}
		}
	}
	if !source.NameRE.MatchString(name) {
		return nil, "", usagef("invalid pipeline name %q: want ^[a-z][a-z0-9-]{0,62}$", name)
	}
	def["name"], _ = json.Marshal(name)
	out, err := json.Marshal(def)
	return out, name, err
}

func (a *app) pipelineListCmd() *cobra.Command {
	c := &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List pipelines",
		Long:    "List the pipelines of your tenant with their latest version." + exitCodesHelp,
		Example: `  lambda pipeline ls`,
		Args:    args(cobra.NoArgs),
	}
	c.RunE = a.run(func(ctx context.Context, _ []string) error {
		cl, err := a.client()
		if err != nil {
			return err
		}
		ps, err := cl.ListPipelines(ctx)
		if err != nil {
			return err
		}
		if ok, err := a.structured(map[string]any{"pipelines": ps}); ok {
			return err
		}
		rows := make([][]string, 0, len(ps))
		for _, p := range ps {
			rows = append(rows, []string{p.Name, strconv.Itoa(p.Version), strconv.Itoa(len(p.Steps)), p.Description, ui.Time(&p.CreatedAt)})
		}
		a.printf("%s", a.outStyles().Table([]string{"NAME", "VERSION", "STEPS", "DESCRIPTION", "UPDATED"}, rows))
		return nil
	})
	return c
}

func (a *app) pipelineGetCmd() *cobra.Command {
	c := &cobra.Command{
		Use:               "get NAME",
		Short:             "Show a pipeline's latest version and its steps",
		Long:              "Show a pipeline's latest version and its steps; -o json or yaml prints the whole definition." + exitCodesHelp,
		Example:           `  lambda pipeline get etl -o yaml`,
		Args:              args(cobra.ExactArgs(1)),
		ValidArgsFunction: a.completePipelines,
	}
	c.RunE = a.run(func(ctx context.Context, args []string) error {
		cl, err := a.client()
		if err != nil {
			return err
		}
		p, err := cl.GetPipeline(ctx, args[0])
		if err != nil {
			return err
		}
		if ok, err := a.structured(p); ok {
			return err
		}
		s := a.outStyles()
		fields := [][]string{{"name:", p.Name}, {"version:", strconv.Itoa(p.Version)}, {"sha256:", p.SHA256}}
		if p.Description != "" {
			fields = append(fields, []string{"description:", p.Description})
		}
		a.printf("%s", s.Fields(append(fields, []string{"created:", ui.Time(&p.CreatedAt)})))
		rows := make([][]string, 0, len(p.Steps))
		for _, raw := range p.Steps {
			rows = append(rows, describeStep(raw))
		}
		a.printf("\n%s", s.Table([]string{"STEP", "KIND", "DOES"}, rows))
		return nil
	})
	return c
}

// describeStep is a step's id, kind and what it does, from its definition.
func describeStep(raw json.RawMessage) []string {
	var st struct {
		ID       string `json:"id"`
		Function string `json:"function"`
		Version  int    `json:"version"`
		Map      *struct {
			Items string `json:"items"`
			Step  struct {
				Function string `json:"function"`
			} `json:"step"`
		} `json:"map"`
		Parallel map[string]json.RawMessage `json:"parallel"`
		SleepMS  *int64                     `json:"sleep_ms"`
		WaitFor  *struct {
			Signal string `json:"signal"`
		} `json:"wait_for"`
		If string `json:"if"`
	}
	_ = json.Unmarshal(raw, &st)
	kind, does := "?", ""
	switch {
	case st.Function != "":
		kind, does = "function", ui.FunctionVersion(st.Function, st.Version)
	case st.Map != nil:
		kind, does = "map", fmt.Sprintf("%s over %s", st.Map.Step.Function, st.Map.Items)
	case st.Parallel != nil:
		kind, does = "parallel", fmt.Sprintf("%d branches", len(st.Parallel))
	case st.SleepMS != nil:
		kind, does = "sleep", ui.Millis(float64(*st.SleepMS))
	case st.WaitFor != nil:
		kind, does = "wait", "signal "+st.WaitFor.Signal
	}
	if st.If != "" {
		does += " if " + st.If
	}
	return []string{st.ID, kind, does}
}

func (a *app) pipelineRemoveCmd() *cobra.Command {
	c := &cobra.Command{
		Use:               "rm NAME...",
		Aliases:           []string{"delete"},
		Short:             "Delete pipelines (their runs stay)",
		Long:              "Delete pipelines; their runs stay." + exitCodesHelp,
		Example:           `  lambda pipeline rm etl`,
		Args:              args(cobra.MinimumNArgs(1)),
		ValidArgsFunction: a.completePipelines,
	}
	c.RunE = a.run(func(ctx context.Context, args []string) error {
		cl, err := a.client()
		if err != nil {
			return err
		}
		for _, name := range args {
			if err := cl.DeletePipeline(ctx, name); err != nil {
				return err
			}
			a.printf("deleted %s\n", name)
		}
		return nil
	})
	return c
}

// completePipelines completes a pipeline name from the platform.
func (a *app) completePipelines(cmd *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
	if len(args) > 0 && cmd.Name() != "rm" {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	cl, err := a.client()
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	ps, err := cl.ListPipelines(cmd.Context())
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	names := make([]string, 0, len(ps))
	for _, p := range ps {
		names = append(names, p.Name)
	}
	return names, cobra.ShellCompDirectiveNoFileComp
}
