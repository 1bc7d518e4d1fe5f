package client

import (
	"github.com/tidemark/tidemark/api"
	"github.com/tidemark/tidemark/wire"

	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strconv"
)

// TxnTransport is a Transport that carries transactions: NATS and HTTP
// both are.
type TxnTransport interface {
	Txn(ctx context.Context, req api.TxnRequest) (api.TxnResult, error)
}

// TxnPut is a transaction op that sets key to value. Of the write options
// only IfRevision and IfAbsent apply to an op.
func TxnPut(key string, value []byte, opts ...WriteOption) api.TxnOp {
	if value == nil {
		value = []byte{}
	}
	return txnOp(api.WriteRequest{Op: api.OpPut, Key: key, Value: value}, opts)
}

// TxnDelete is a transaction op that deletes key. Of the write options
// only IfRevision applies to a delete.
func TxnDelete(key string, opts ...WriteOption) api.TxnOp {
	return txnOp(api.WriteRequest{Op: api.OpDelete, Key: key}, opts)
}

func txnOp(req api.WriteRequest, opts []WriteOption) api.TxnOp {
	for _, o := range opts {
		o(&req)
	}
	return api.TxnOp{Op: req.Op, Key: req.Key, Value: req.Value, IfRevision: req.IfRevision, IfAbsent: req.IfAbsent}
}

// Txn writes ops atomically: all of them, or, when a condition does not
// hold, none (api.ErrRevisionMismatch; api.FailedOp names the op). The
// result carries the transaction's revision (its last op's), each op's
// revision and the session's new token. In the context's session the
// transaction is one step of the session's write order, and a reply that
// did not come is retried, as a write is, stored at most once.
func (c *Client) Txn(ctx context.Context, ops ...api.TxnOp) (api.TxnResult, error) {
	req := api.TxnRequest{Ops: ops}
	if s := SessionFrom(ctx); s != nil {
		return s.txn(ctx, c, req)
	}
	return c.sendTxn(ctx, req)
}

// Txn writes ops atomically in this session (see Client.Txn).
func (s *Session) Txn(ctx context.Context, ops ...api.TxnOp) (api.TxnResult, error) {
	c, err := s.client()
	if err != nil {
		return api.TxnResult{Token: s.Token()}, err
	}
	return c.Txn(WithSession(ctx, s), ops...)
}

// sendTxn sends a transaction, again with the same write id while it fails
// indeterminately, up to the client's attempts.
func (c *Client) sendTxn(ctx context.Context, req api.TxnRequest) (api.TxnResult, error) {
	t, ok := c.transport.(TxnTransport)
	if !ok {
		return api.TxnResult{Token: req.Token}, api.Errorf(api.ErrInvalidRequest, "the client's transport %T carries no transactions", c.transport)
	}
	if req.WriteID == "" {
		req.WriteID = newWriteID()
	}
	return retried(ctx, c, func() (api.TxnResult, error) { return t.Txn(ctx, req) })
}

// txn sends req through c as the session's next step, after the session's
// earlier writes have been answered; called again with the same ops after
// an indeterminate failure, it reuses the step's write id and number.
func (s *Session) txn(ctx context.Context, c *Client, req api.TxnRequest) (api.TxnResult, error) {
	if err := s.writes.lock(ctx); err != nil {
		return api.TxnResult{Token: s.Token()}, err
	}
	defer s.writes.unlock()

	s.mu.Lock()
	if p := s.pendingTxn; p != nil && slices.EqualFunc(p.Ops, req.Ops, sameOp) {
		req.WriteID, req.SessionSeq = p.WriteID, p.SessionSeq
	} else {
		s.seq++
		req.SessionSeq = s.seq
		req.WriteID = newWriteID()
	}
	s.pending, s.pendingTxn = nil, nil
	req.Session, req.Token = s.id, s.tok
	s.mu.Unlock()

	res, err := c.sendTxn(ctx, req)
	s.observe(res.Token)
	if err != nil && indeterminate(err) {
		req.Ops = slices.Clone(req.Ops)
		for i := range req.Ops {
			req.Ops[i].Value = bytes.Clone(req.Ops[i].Value) // the caller may reuse its buffers
		}
		s.mu.Lock()
		s.pendingTxn = &req
		s.mu.Unlock()
	}
	return res, err
}

func sameOp(a, b api.TxnOp) bool {
	return a.Op == b.Op && a.Key == b.Key && bytes.Equal(a.Value, b.Value) && a.IfRevision == b.IfRevision && a.IfAbsent == b.IfAbsent
}

// Txn sends a transaction to a writer (its txn endpoint). Errors of the
// writer come back as the stream sentinels, an op's wrapped in an
// api.OpError; when no writer answers, it fails with api.ErrUnavailable.
func (c *NATS) Txn(ctx context.Context, req api.TxnRequest) (api.TxnResult, error) {
	failed := api.TxnResult{Token: req.Token}
	limit := c.ValueLimit()
	for i, op := range req.Ops {
		if err := limit.Check(int64(len(op.Value))); err != nil {
			return failed, &api.OpError{Op: i, Err: err}
		}
	}
	ctx, cancel := withDefaultTimeout(ctx, c.WriteTimeout)
	defer cancel()
	reply, err := c.request(ctx, wire.TxnMsg(c.subjects.Txn(), req), "writer")
	if err != nil {
		return failed, err
	}
	res, err := wire.DecodeTxnReply(reply)
	if err != nil && res.Token.IsZero() {
		res.Token = req.Token
	}
	return res, err
}

// Txn sends a transaction (POST /v1/txn).
func (h *HTTP) Txn(ctx context.Context, req api.TxnRequest) (api.TxnResult, error) {
	failed := api.TxnResult{Token: req.Token}
	if h.err != nil {
		return failed, h.err
	}
	ctx, cancel := withDefaultTimeout(ctx, h.WriteTimeout)
	defer cancel()
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, h.base+"/v1/txn", bytes.NewReader(api.EncodeTxnJSON(req.Ops)))
	if err != nil {
		return failed, api.Errorf(api.ErrInvalidRequest, "transaction: %w", err)
	}
	hr.Header.Set("Content-Type", "application/json")
	setToken(hr.Header, h.formatToken(req.Token))
	if req.WriteID != "" {
		hr.Header.Set(api.HeaderWriteID, req.WriteID)
	}
	if req.Session != "" {
		hr.Header.Set(api.HeaderSession, req.Session)
		hr.Header.Set(api.HeaderSessionSeq, strconv.FormatUint(req.SessionSeq, 10))
	}
	resp, data, err := h.do(hr)
	if err != nil {
		return failed, err
	}
	res, err := decodeHTTPTxn(resp.StatusCode, resp.Header, data, h.parseToken)
	if res.Token.IsZero() && !errors.Is(err, api.ErrTokenStreamMismatch) && !errors.Is(err, api.ErrTokenFromFuture) {
		res.Token = req.Token
	}
	return res, err
}

// decodeHTTPTxn decodes the reply to a transaction.
func decodeHTTPTxn(status int, h http.Header, body []byte, parse tokenParser) (api.TxnResult, error) {
	tok, rev, err := replyTokenRevision(h, parse)
	res := api.TxnResult{Token: tok, Revision: rev}
	if err != nil {
		return res, err
	}
	if status != http.StatusOK {
		return res, decodeHTTPError(status, body)
	}
	var t api.TxnResultJSON
	if err := json.Unmarshal(body, &t); err != nil {
		return res, api.Errorf(api.ErrInternal, "bad transaction reply: %w", err)
	}
	if t.Revision == 0 || len(t.Ops) == 0 {
		return res, api.Errorf(api.ErrInternal, "bad transaction reply: no revision")
	}
	res.Revision = t.Revision
	if res.Token.IsZero() {
		if res.Token, err = parse(t.Token); err != nil {
			return res, api.Errorf(api.ErrInternal, "bad token in transaction reply: %w", err)
		}
	}
	res.Ops = make([]api.WriteResult, len(t.Ops))
	for i, op := range t.Ops {
		res.Ops[i] = api.WriteResult{Key: op.Key, Revision: op.Revision, Token: res.Token}
	}
	return res, nil
}
