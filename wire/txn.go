package wire

import (
	"github.com/tidemark/tidemark/api"

	"encoding/json"
	"strconv"

	"github.com/nats-io/nats.go"
)

// TxnMsg builds the NATS request for t on subject: the token, write id
// and session in headers, the ops as JSON (api.TxnJSON).
func TxnMsg(subject string, t api.TxnRequest) *nats.Msg {
	m := nats.NewMsg(subject)
	if !t.Token.IsZero() {
		m.Header.Set(api.HeaderToken, t.Token.String())
	}
	if t.WriteID != "" {
		m.Header.Set(api.HeaderWriteID, t.WriteID)
	}
	api.SetSession(m.Header, t.Session, t.SessionSeq)
	m.Data = api.EncodeTxnJSON(t.Ops)
	return m
}

// DecodeTxnRequest decodes a transaction request from NATS headers and
// data.
func DecodeTxnRequest(h nats.Header, data []byte) (api.TxnRequest, error) {
	tok, err := api.ParseToken(h.Get(api.HeaderToken))
	if err != nil {
		return api.TxnRequest{}, err
	}
	t := api.TxnRequest{Token: tok}
	if err := api.ParseTxnHeaders(h, &t); err != nil {
		return api.TxnRequest{}, err
	}
	if t.Ops, err = api.DecodeTxnJSON(data); err != nil {
		return api.TxnRequest{}, err
	}
	return t, t.Validate()
}

// EncodeTxnReply encodes the reply to a transaction: headers and body. A
// failure that names an op carries its index in api.HeaderTxnOp and in the
// body's "op".
func EncodeTxnReply(res api.TxnResult, err error) (nats.Header, []byte) {
	h := nats.Header{}
	setTokenRev(h, res.Token, res.Revision)
	if err != nil {
		if i, ok := api.FailedOp(err); ok {
			h.Set(api.HeaderTxnOp, strconv.Itoa(i))
		}
		return errorReply(h, err)
	}
	body, _ := json.Marshal(res.ToTxnResultJSON(res.Token.String()))
	return h, body
}

// DecodeTxnReply decodes a writer's reply to a transaction.
func DecodeTxnReply(m *nats.Msg) (api.TxnResult, error) {
	tok, rev, err := replyTokenRev(m)
	res := api.TxnResult{Token: tok, Revision: rev}
	if err != nil {
		return res, err
	}
	if err := replyError(m); err != nil {
		if i, ok := api.ParseTxnOp(m.Header.Get(api.HeaderTxnOp)); ok {
			err = &api.OpError{Op: i, Err: err}
		}
		return res, err
	}
	var body api.TxnResultJSON
	if err := json.Unmarshal(m.Data, &body); err != nil {
		return res, api.Errorf(api.ErrInternal, "bad transaction reply: %w", err)
	}
	res.Ops = make([]api.WriteResult, len(body.Ops))
	for i, op := range body.Ops {
		res.Ops[i] = api.WriteResult{Key: op.Key, Revision: op.Revision, Token: tok}
	}
	return res, nil
}
