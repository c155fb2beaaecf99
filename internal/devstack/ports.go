package devstack

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/lambda-microservice/lambda/internal/platform/freeport"
)

// The OpenFaaS gateway hard-codes its ports and binds every interface.
const (
	GatewayPort        = 8080
	GatewayMetricsPort = 8082
)

// assignAddresses fixes every listen address before anything starts, so that the
// Prometheus configuration and the children's environments can name them.
func (s *Stack) assignAddresses() error {
	o := &s.opts
	if netnsWorks() {
		// The gateway gets a network namespace of its own, bridged in from 127.0.0.1 only
		// (netns.go): its usual ports on loopback, or free ones for a test stack.
		for _, a := range []struct {
			dst  *string
			port int
		}{{&s.gatewayAddr, GatewayPort}, {&s.gatewayMetricsAddr, GatewayMetricsPort}} {
			addr := fmt.Sprintf("127.0.0.1:%d", a.port)
			if o.FreePorts {
				var err error
				if addr, err = freeAddr(); err != nil {
					return err
				}
			} else if err := checkFree(addr); err != nil {
				return fmt.Errorf("devstack: port %d is in use — is another `make run` running? (the OpenFaaS gateway's %s: %v)", a.port, addr, err)
			}
			*a.dst = addr
		}
	} else if o.PortWait == 0 {
		// Fail before anything starts when another stack runs (its gateway holds 8080).
		if err := CheckGatewayPorts(); err != nil {
			return fmt.Errorf("devstack: %w", err)
		}
	}
	pick := func(addr, what, envName string) (string, error) {
		if o.FreePorts {
			return freeAddr()
		}
		if err := checkFree(addr); err != nil {
			return "", fmt.Errorf("devstack: %s (%s, %s) is in use — is another `make run` running? (%v)", addr, what, envName, err)
		}
		return addr, nil
	}
	var err error
	if !o.SkipAPI {
		if s.apiAddr, err = pick(o.APIAddr, "api", "LAMBDA_HTTP_ADDR"); err != nil {
			return err
		}
		s.APIURL = "http://" + s.apiAddr
		s.apiAddrs = []string{s.apiAddr}
		for range o.APIs - 1 {
			addr, err := freeAddr()
			if err != nil {
				return err
			}
			s.apiAddrs = append(s.apiAddrs, addr)
		}
		for _, a := range s.apiAddrs {
			s.APIURLs = append(s.APIURLs, "http://"+a)
		}
	}
	if s.providerAddr, err = pick(o.ProviderAddr, "provider", "LAMBDA_PROVIDER_ADDR"); err != nil {
		return err
	}
	s.ProviderURL = "http://" + s.providerAddr
	if !o.SkipTemporal {
		if s.TemporalAddr, err = pick(o.TemporalAddr, "Temporal", "LAMBDA_TEMPORAL_ADDR"); err != nil {
			return err
		}
		if s.temporalMetrics, err = freeAddr(); err != nil {
			return err
		}
		if !o.TemporalHeadless {
			ui, err := pick(net.JoinHostPort("127.0.0.1", strconv.Itoa(o.TemporalUIPort)), "Temporal UI", "LAMBDA_TEMPORAL_UI_PORT")
			if err != nil {
				return err
			}
			_, port, _ := net.SplitHostPort(ui)
			s.temporalUIPort, _ = strconv.Atoi(port)
			s.TemporalUIURL = "http://" + ui
		}
	}
	if s.prometheusWanted() {
		if s.prometheusAddr, err = pick(o.PrometheusAddr, "Prometheus", "LAMBDA_PROMETHEUS_ADDR"); err != nil {
			return err
		}
		s.PrometheusURL = "http://" + s.prometheusAddr
	}
	if o.Worker != "off" {
		// Checked only when the worker actually starts; a busy default port is replaced.
		s.workerMetrics = o.WorkerMetricsAddr
		if o.FreePorts || checkFree(s.workerMetrics) != nil {
			if s.workerMetrics, err = freeAddr(); err != nil {
				return err
			}
		}
		s.WorkerMetricsURL = "http://" + s.workerMetrics + "/metrics"
		s.workerAddrs = []string{s.workerMetrics}
		for range o.Workers - 1 {
			addr, err := freeAddr()
			if err != nil {
				return err
			}
			s.workerAddrs = append(s.workerAddrs, addr)
		}
	}
	s.GatewayURL = fmt.Sprintf("http://127.0.0.1:%d", GatewayPort)
	s.GatewayMetricsURL = fmt.Sprintf("http://127.0.0.1:%d/metrics", GatewayMetricsPort)
	if s.gatewayAddr != "" {
		s.GatewayURL = "http://" + s.gatewayAddr
		s.GatewayMetricsURL = "http://" + s.gatewayMetricsAddr + "/metrics"
	}
	s.GatewayUIURL = s.GatewayURL + "/ui/"
	return nil
}

// lockGatewayPorts takes this machine's lock on the gateway's fixed ports, waiting up to
// PortWait for another stack to release it, then checks that nothing else holds them.
func (s *Stack) lockGatewayPorts() error {
	path := filepath.Join(os.TempDir(), "lambda-microservice-gateway.lock")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		return fmt.Errorf("gateway port lock %s: %w", path, err)
	}
	deadline := time.Now().Add(s.opts.PortWait)
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return fmt.Errorf("gateway port lock %s: %w", path, err)
		}
		if time.Now().After(deadline) {
			f.Close()
			return fmt.Errorf("port %d is in use — is another `make run` running? (another stack holds %s)", GatewayPort, path)
		}
		time.Sleep(200 * time.Millisecond)
	}
	s.addCleanup(func() { f.Close() }) // closing releases the lock
	for {
		err := CheckGatewayPorts()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// CheckGatewayPorts fails with a clear error when the gateway's port 8080 or 8082 is taken.
func CheckGatewayPorts() error {
	for _, port := range []int{GatewayPort, GatewayMetricsPort} {
		if err := checkFree(fmt.Sprintf(":%d", port)); err != nil {
			return fmt.Errorf("port %d is in use — is another `make run` running? (the OpenFaaS gateway needs ports %d and %d on every interface: %v)",
				port, GatewayPort, GatewayMetricsPort, err)
		}
		if c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 300*time.Millisecond); err == nil {
			c.Close()
			return fmt.Errorf("port %d is in use — is another `make run` running? (something answers on 127.0.0.1:%d)", port, port)
		}
	}
	return nil
}

// checkFree tells whether addr can be listened on now.
func checkFree(addr string) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	return l.Close()
}

// freeAddr returns 127.0.0.1:<a free port> for a child process.
func freeAddr() (string, error) { return freeport.Addr() }

func freePort() (int, error) { return freeport.Get() }

func portOf(addr string) string {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	return p
}
