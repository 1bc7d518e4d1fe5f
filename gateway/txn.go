package gateway

import (
	"github.com/tidemark/tidemark/api"
	"github.com/tidemark/tidemark/internal/deadline"

	"context"
	"net/http"
	"strconv"
)

// txnPath is the transaction endpoint.
const txnPath = "/v1/txn"

// maxTxnBody bounds the body of a transaction request: a transaction's
// keys and values (api.DefaultTxnMaxBytes at most, by default) in JSON,
// values in base64. The writer checks the transaction's own limits.
const maxTxnBody = 4 << 20

// txnWriter is a Writer that takes transactions: the writer, and the
// NATS client transport.
type txnWriter interface {
	Txn(ctx context.Context, req api.TxnRequest) (api.TxnResult, error)
}

// txn handles POST /v1/txn: the ops as JSON (api.TxnJSON), the write id
// (Tidemark-Write-Id or Idempotency-Key) and session in headers.
func (g *Gateway) txn(w http.ResponseWriter, r *http.Request, tok api.Token) (reply, error) {
	tw, ok := g.cfg.Writer.(txnWriter)
	if !ok {
		return reply{}, api.Errorf(api.ErrUnavailable, "this gateway's writer takes no transactions")
	}
	if r.ContentLength > maxTxnBody {
		return reply{}, api.Errorf(api.ErrValueTooLarge, "transaction body of %d bytes: at most %d", r.ContentLength, maxTxnBody)
	}
	body, err := readValue(r, maxTxnBody)
	if err != nil {
		return reply{}, api.Errorf(api.ErrInvalidRequest, "reading body: %w", err)
	}
	if len(body) > maxTxnBody {
		return reply{}, api.Errorf(api.ErrValueTooLarge, "transaction body over %d bytes", maxTxnBody)
	}
	req := api.TxnRequest{Token: tok}
	if err := api.ParseTxnHeaders(r.Header, &req); err != nil {
		return reply{}, err
	}
	if req.WriteID == "" {
		req.WriteID = r.Header.Get(HeaderIdempotencyKey)
	}
	if req.Ops, err = api.DecodeTxnJSON(body); err != nil {
		return reply{}, err
	}
	if err := req.Validate(); err != nil {
		return reply{}, err
	}
	ctx, cancel := deadline.WithTimeout(r.Context(), DefaultWriteTimeout)
	defer cancel()
	res, err := tw.Txn(ctx, req)
	if err != nil {
		return reply{token: res.Token}, err
	}
	w.Header().Set(api.HeaderRevision, strconv.FormatUint(res.Revision, 10))
	return reply{token: res.Token, json: func(tok string) any { return res.ToTxnResultJSON(tok) }}, nil
}
