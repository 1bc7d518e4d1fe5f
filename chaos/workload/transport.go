package workload

import (
	"github.com/tidemark/tidemark/api"

	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"

	"github.com/tidemark/tidemark/chaos/history"
)

// maxReply bounds the body of a reply the workload reads.
const maxReply = 8 << 20

// doNATS sends op to the services over NATS and returns the reply's token.
func (s *session) doNATS(ctx context.Context, op *history.Op, tok api.Token) api.Token {
	switch op.Kind {
	case history.Put, history.Delete:
		req := api.WriteRequest{Op: api.OpPut, Key: op.Key, Value: op.Value, Token: tok, WriteID: op.WriteID,
			Session: op.SessionID, SessionSeq: op.SessionSeq, TTL: op.TTL}
		if op.Kind == history.Delete {
			req.Op = api.OpDelete
		}
		res, err := s.nats.Write(ctx, req)
		if err != nil {
			s.fail(op, codeOf(err), err.Error())
			return res.Token
		}
		op.Outcome, op.Revision = history.OK, res.Revision
		return res.Token
	case history.Txn:
		res, err := s.nats.Txn(ctx, txnRequest(op, tok))
		if err != nil {
			s.fail(op, codeOf(err), err.Error())
			return res.Token
		}
		op.Outcome, op.Revision = history.OK, res.Revision
		return res.Token
	case history.Get:
		res, err := s.nats.Get(ctx, api.GetRequest{Key: op.Key, ReadSpec: api.ReadSpec{Token: tok, Wait: s.cfg.ReadWait, Replica: op.Replica}})
		op.ServedBy, op.Applied = res.Replica, res.Applied
		switch {
		case err == nil:
			op.Outcome, op.Found, op.Value, op.Revision = history.OK, true, res.Record.Value, res.Record.Revision
		case errors.Is(err, api.ErrNotFound):
			op.Outcome, op.Revision = history.OK, res.Record.Revision
		default:
			s.fail(op, codeOf(err), err.Error())
		}
		return res.Token
	default:
		res, err := s.nats.Scan(ctx, api.ScanRequest{
			Prefix:   op.Prefix,
			After:    op.After,
			Limit:    op.Limit,
			ReadSpec: api.ReadSpec{Token: tok, Wait: s.cfg.ReadWait, Replica: op.Replica},
		})
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
	return api.Code(err)
}

// doHTTP sends op to the gateway at base and returns the reply's token.
func (s *session) doHTTP(ctx context.Context, base string, op *history.Op, tok api.Token) api.Token {
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
	case history.Txn:
		method, target, body = http.MethodPost, base+"/v1/txn", bytesReader(api.EncodeTxnJSON(txnRequest(op, tok).Ops))
	case history.Scan:
		q := url.Values{"prefix": {op.Prefix}, "limit": {strconv.Itoa(op.Limit)}}
		if op.After != "" {
			q.Set("after", op.After)
		}
		target = base + "/v1/kv?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, target, body)
	if err != nil {
		s.fail(op, api.CodeInvalidRequest, err.Error())
		return api.Token{}
	}
	if !tok.IsZero() {
		req.Header.Set(api.HeaderToken, tok.String())
	}
	if op.Kind.Writes() {
		req.Header.Set(api.HeaderWriteID, op.WriteID)
		if op.TTL > 0 {
			req.Header.Set(api.HeaderTTL, op.TTL.String())
		}
		if op.SessionID != "" {
			req.Header.Set(api.HeaderSession, op.SessionID)
			req.Header.Set(api.HeaderSessionSeq, strconv.FormatUint(op.SessionSeq, 10))
		}
	} else {
		req.Header.Set(api.HeaderWait, s.cfg.ReadWait.String())
		if op.Replica != "" {
			req.Header.Set(api.HeaderReplica, op.Replica)
		}
	}
	resp, err := s.http.Do(req)
	if err != nil {
		s.fail(op, "", err.Error())
		return api.Token{}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxReply))
	if err != nil {
		s.fail(op, "", "reading reply: "+err.Error())
		return api.Token{}
	}
	out, _ := api.ParseToken(resp.Header.Get(api.HeaderToken))
	op.ServedBy = resp.Header.Get(api.HeaderReplica)
	op.Applied, _ = strconv.ParseUint(resp.Header.Get(api.HeaderApplied), 10, 64)
	rev, _ := strconv.ParseUint(resp.Header.Get(api.HeaderRevision), 10, 64)
	if resp.StatusCode != http.StatusOK {
		var e api.ErrorJSON
		_ = json.Unmarshal(data, &e)
		if op.Kind == history.Get && e.Error.Code == api.CodeNotFound {
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
		var w api.WriteJSON
		if err := json.Unmarshal(data, &w); err != nil {
			s.fail(op, "", "bad write reply: "+err.Error())
			return out
		}
		op.Outcome, op.Revision = history.OK, w.Revision
		if t, err := api.ParseToken(w.Token); err == nil && out.IsZero() {
			out = t
		}
	case history.Txn:
		var t api.TxnResultJSON
		if err := json.Unmarshal(data, &t); err != nil {
			s.fail(op, "", "bad transaction reply: "+err.Error())
			return out
		}
		op.Outcome, op.Revision = history.OK, t.Revision
		if tt, err := api.ParseToken(t.Token); err == nil && out.IsZero() {
			out = tt
		}
	case history.Get:
		op.Outcome, op.Found, op.Value, op.Revision = history.OK, true, data, rev
	case history.Scan:
		var sc api.ScanJSON
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

// txnRequest is the transaction op records, with token tok.
func txnRequest(op *history.Op, tok api.Token) api.TxnRequest {
	req := api.TxnRequest{Token: tok, WriteID: op.WriteID, Session: op.SessionID, SessionSeq: op.SessionSeq}
	for _, t := range op.TxnOps {
		o := api.TxnOp{Op: api.OpPut, Key: t.Key, Value: t.Value}
		if t.Kind == history.Delete {
			o.Op, o.Value = api.OpDelete, nil
		} else if o.Value == nil {
			o.Value = []byte{}
		}
		req.Ops = append(req.Ops, o)
	}
	return req
}

func abbrev(b []byte) []byte {
	if len(b) > 200 {
		return b[:200]
	}
	return b
}

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }
