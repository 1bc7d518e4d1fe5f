package chaos

import (
	"github.com/tidemark/tidemark/api"

	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/tidemark/tidemark/chaos/history"
)

// finalReadTimeout bounds one strong read at the end of a run.
const finalReadTimeout = 20 * time.Second

// ReadPath is one way of reading at the end: a gateway, and a replica the
// read is pinned to ("" for the gateway's own choice).
type ReadPath struct {
	Gateway, URL, Replica string
}

// Via names the path in the history.
func (p ReadPath) Via() string {
	if p.Replica == "" {
		return "gateway " + p.Gateway
	}
	return "gateway " + p.Gateway + " replica " + p.Replica
}

// ReadPaths returns every gateway, unpinned and pinned to each replica.
func (c *Cluster) ReadPaths() []ReadPath {
	var out []ReadPath
	for _, g := range c.gateways {
		for _, r := range append([]string{""}, c.ReplicaIDs()...) {
			out = append(out, ReadPath{Gateway: g.id, URL: "http://" + g.http, Replica: r})
		}
	}
	return out
}

// FinalReads reads every key that the stream holds or that an operation
// wrote (in a deleted stream or a lost tail too) with strong consistency
// (Tidemark-Consistency: strong, no token) along every path.
func FinalReads(ctx context.Context, paths []ReadPath, msgs []history.Message, ops []history.Op) []history.FinalRead {
	keys := map[string]bool{}
	for _, m := range msgs {
		if m.Kind.IsWrite() { // a session's order marker and a clock tick name no key
			keys[m.Key] = true
		}
	}
	for _, op := range ops {
		if op.Kind.IsWrite() {
			keys[op.Key] = true
		}
	}
	sorted := make([]string, 0, len(keys))
	for k := range keys {
		sorted = append(sorted, k)
	}
	sort.Strings(sorted)
	hc := &http.Client{Timeout: finalReadTimeout}
	defer hc.CloseIdleConnections()
	var out []history.FinalRead
	for _, p := range paths {
		for _, k := range sorted {
			out = append(out, strongRead(ctx, hc, p, k))
		}
	}
	return out
}

func strongRead(ctx context.Context, hc *http.Client, p ReadPath, key string) history.FinalRead {
	rd := history.FinalRead{Via: p.Via(), Key: key}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.URL+"/v1/kv/"+url.PathEscape(key), nil)
	if err != nil {
		rd.Error = err.Error()
		return rd
	}
	req.Header.Set(api.HeaderConsistency, string(api.Strong))
	if p.Replica != "" {
		req.Header.Set(api.HeaderReplica, p.Replica)
	}
	resp, err := hc.Do(req)
	if err != nil {
		rd.Error = err.Error()
		return rd
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		rd.Error = "reading reply: " + err.Error()
		return rd
	}
	rd.Revision, _ = strconv.ParseUint(resp.Header.Get(api.HeaderRevision), 10, 64)
	if got := resp.Header.Get(api.HeaderReplica); p.Replica != "" && got != p.Replica {
		rd.Error = fmt.Sprintf("pinned to %s, served by %q", p.Replica, got)
		return rd
	}
	switch resp.StatusCode {
	case http.StatusOK:
		rd.Found, rd.Value = true, data
		if rd.Value == nil {
			rd.Value = []byte{}
		}
	case http.StatusNotFound:
		var e api.ErrorJSON
		if json.Unmarshal(data, &e) != nil || e.Error.Code != api.CodeNotFound {
			rd.Error = resp.Status + ": " + strings.TrimSpace(string(data))
		}
	default:
		rd.Error = resp.Status + ": " + strings.TrimSpace(string(data))
	}
	return rd
}

// errReplicaAhead means a replica has applied beyond the stream's last
// sequence: it holds a history the stream does not have, and no waiting
// makes it converge.
var errReplicaAhead = errors.New("replica ahead of the stream")
