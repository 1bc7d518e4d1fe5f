package workload

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"

	"github.com/tidemark/tidemark/chaos/history"
	"github.com/tidemark/tidemark/stream"
)

// maxReply bounds the body of a reply the workload reads.
const maxReply = 8 << 20

// doNATS sends op to the services over NATS and returns the reply's token.
func (s *session) doNATS(ctx context.Context, op *history.Op, tok stream.Token) stream.Token {
	switch op.Kind {
	case history.Put, history.Delete:
		req := stream.WriteRequest{Op: stream.OpPut, Key: op.Key, Value: op.Value, Token: tok, WriteID: op.WriteID,
			Session: op.SessionID, SessionSeq: op.SessionSeq}
		if op.Kind == history.Delete {
			req.Op = stream.OpDelete
		}
		res, err := s.nats.Write(ctx, req)
		if err != nil {
			s.fail(op, codeOf(err), err.Error())
			return res.Token
		}
		op.Outcome, op.Revision = history.OK, res.Revision
		return res.Token
	case history.Get:
		res, err := s.nats.Get(ctx, stream.GetRequest{Key: op.Key, Token: tok, Wait: s.cfg.ReadWait, Replica: op.Replica})
		op.ServedBy, op.Applied = res.Replica, res.Applied
		switch {
		case err == nil:
			op.Outcome, op.Found, op.Value, op.Revision = history.OK, true, res.Record.Value, res.Record.Revision
		case errors.Is(err, stream.ErrNotFound):
			op.Outcome, op.Revision = history.OK, res.Record.Revision
		default:
			s.fail(op, codeOf(err), err.Error())
		}
		return res.Token
	default:
		res, err := s.nats.Scan(ctx, stream.ScanRequest{Prefix: op.Prefix, After: op.After, Limit: op.Limit, Token: tok,
			Wait: s.cfg.ReadWait, Replica: op.Replica})
		op.ServedBy, op.Applied = res.Replica, res.Applied
		if err != nil {
			s.fail(op, codeOf(err), err.Error())
			return res.Token
		}
		op.Outcome, op.Next = history.OK, res.Next
		op.Items = make([]history.Item, len(res.Items))
		for i, it := range res.Items {
			op.Items[i] = history.Item{Key: it.Key, Value: it.Value, Revision: it.Revision}
		}
		return res.Token
	}
}

// codeOf is the API error code of err; "" for a failure that never got a
// reply (a cancelled context).
func codeOf(err error) string {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return ""
	}
	return stream.Code(err)
}

// doHTTP sends op to the gateway at base and returns the reply's token.
func (s *session) doHTTP(ctx context.Context, base string, op *history.Op, tok stream.Token) stream.Token {
	var (
		method = http.MethodGet
		target = base + "/v1/kv/" + url.PathEscape(op.Key)
		body   io.Reader
	)
	switch op.Kind {
	case history.Put:
		method, body = http.MethodPut, bytesReader(op.Value)
	case history.Delete:
		method = http.MethodDelete
	case history.Scan:
		q := url.Values{"prefix": {op.Prefix}, "limit": {strconv.Itoa(op.Limit)}}
		if op.After != "" {
			q.Set("after", op.After)
		}
		target = base + "/v1/kv?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, target, body)
	if err != nil {
		s.fail(op, stream.CodeInvalidRequest, err.Error())
		return stream.Token{}
	}
	if !tok.IsZero() {
		req.Header.Set(stream.HeaderToken, tok.String())
	}
	if op.Kind.IsWrite() {
		req.Header.Set(stream.HeaderWriteID, op.WriteID)
		if op.SessionID != "" {
			req.Header.Set(stream.HeaderSession, op.SessionID)
			req.Header.Set(stream.HeaderSessionSeq, strconv.FormatUint(op.SessionSeq, 10))
		}
	} else {
		req.Header.Set(stream.HeaderWait, s.cfg.ReadWait.String())
		if op.Replica != "" {
			req.Header.Set(stream.HeaderReplica, op.Replica)
		}
	}
	resp, err := s.http.Do(req)
	if err != nil {
		s.fail(op, "", err.Error())
		return stream.Token{}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxReply))
	if err != nil {
		s.fail(op, "", "reading reply: "+err.Error())
		return stream.Token{}
	}
	out, _ := stream.ParseToken(resp.Header.Get(stream.HeaderToken))
	op.ServedBy = resp.Header.Get(stream.HeaderReplica)
	op.Applied, _ = strconv.ParseUint(resp.Header.Get(stream.HeaderApplied), 10, 64)
	rev, _ := strconv.ParseUint(resp.Header.Get(stream.HeaderRevision), 10, 64)
	if resp.StatusCode != http.StatusOK {
		var e stream.ErrorJSON
		_ = json.Unmarshal(data, &e)
		if op.Kind == history.Get && e.Error.Code == stream.CodeNotFound {
			op.Outcome, op.Revision = history.OK, rev
			return out
		}
		code := e.Error.Code
		if code == "" {
			code = "http_" + strconv.Itoa(resp.StatusCode)
			if resp.StatusCode >= 500 {
				code = "" // not the gateway's answer: a proxy or a dying server
			}
		}
		s.fail(op, code, resp.Status+": "+string(abbrev(data)))
		return out
	}
	switch op.Kind {
	case history.Put, history.Delete:
		var w stream.WriteJSON
		if err := json.Unmarshal(data, &w); err != nil {
			s.fail(op, "", "bad write reply: "+err.Error())
			return out
		}
		op.Outcome, op.Revision = history.OK, w.Revision
		if t, err := stream.ParseToken(w.Token); err == nil && out.IsZero() {
			out = t
		}
	case history.Get:
		op.Outcome, op.Found, op.Value, op.Revision = history.OK, true, data, rev
	case history.Scan:
		var sc stream.ScanJSON
		if err := json.Unmarshal(data, &sc); err != nil {
			s.fail(op, "", "bad scan reply: "+err.Error())
			return out
		}
		op.Outcome, op.Next = history.OK, sc.Next
		op.Items = make([]history.Item, len(sc.Items))
		for i, it := range sc.Items {
			op.Items[i] = history.Item{Key: it.Key, Value: it.Value, Revision: it.Revision}
		}
	}
	return out
}

func abbrev(b []byte) []byte {
	if len(b) > 200 {
		return b[:200]
	}
	return b
}

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }
