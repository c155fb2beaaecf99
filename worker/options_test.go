package worker

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/api/workflowservice/v1"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/stats"
)

// encodings is a frontend whose stats handler records the compression of each
// request it gets.
type encodings struct {
	workflowservice.UnimplementedWorkflowServiceServer
	seen chan string
}

func (e *encodings) GetSystemInfo(context.Context, *workflowservice.GetSystemInfoRequest) (*workflowservice.GetSystemInfoResponse, error) {
	return &workflowservice.GetSystemInfoResponse{}, nil
}

func (e *encodings) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context   { return ctx }
func (e *encodings) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context { return ctx }
func (e *encodings) HandleConn(context.Context, stats.ConnStats)                       {}
func (e *encodings) HandleRPC(_ context.Context, s stats.RPCStats) {
	if h, ok := s.(*stats.InHeader); ok {
		enc := h.Compression
		if enc == "" {
			enc = "identity"
		}
		e.seen <- h.FullMethod + " " + enc
	}
}

// The clients of the api and the workers send uncompressed requests unless
// LAMBDA_TEMPORAL_GZIP asks for the SDK's gzip.
func TestClientCompressesOnlyWhenAsked(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	fe := &encodings{seen: make(chan string, 16)}
	srv := grpc.NewServer(grpc.StatsHandler(fe))
	workflowservice.RegisterWorkflowServiceServer(srv, fe)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(srv.Stop)

	for _, tc := range []struct {
		gzip bool
		want string
	}{{false, "identity"}, {true, "gzip"}} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		c, err := NewLazyClient(TemporalConfig{Addr: ln.Addr().String(), Namespace: "default", Gzip: tc.gzip}, zap.NewNop(), nil)
		require.NoError(t, err)
		_, _ = c.CheckHealth(ctx, nil) // the first call asks GetSystemInfo
		const info = "/temporal.api.workflowservice.v1.WorkflowService/GetSystemInfo "
		got := ""
		for !strings.HasPrefix(got, info) {
			select {
			case got = <-fe.seen:
			case <-ctx.Done():
				t.Fatal("the frontend got no GetSystemInfo")
			}
		}
		require.Equal(t, info+tc.want, got, "gzip=%v", tc.gzip)
		c.Close()
		cancel()
	}
}
