package api

// WriteJSON is the JSON body of a successful write, over HTTP and NATS.
type WriteJSON struct {
	Key      string `json:"key"`
	Revision uint64 `json:"revision"`
	Token    string `json:"token"`
}

// ItemJSON is one key of a scan page.
type ItemJSON struct {
	Key      string `json:"key"`
	Value    []byte `json:"value"`
	Revision uint64 `json:"revision"`
}

// ScanJSON is the JSON body of a scan page, over HTTP and NATS.
type ScanJSON struct {
	Items []ItemJSON `json:"items"`
	Next  string     `json:"next"`
	Token string     `json:"token"`
}

// ScanRequestJSON is the JSON body of a scan request over NATS.
type ScanRequestJSON struct {
	Prefix string `json:"prefix"`
	After  string `json:"after,omitempty"`
	Limit  int    `json:"limit,omitempty"`
}

// ErrorJSON is the JSON body of every error, over HTTP and NATS.
type ErrorJSON struct {
	Error ErrorBody `json:"error"`
}

// ErrorBody is the code and message of an error.
type ErrorBody struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	// Op is the index of the transaction op that failed, when one did.
	Op *int `json:"op,omitempty"`
}

// ToScanJSON converts a scan page to its JSON form.
func (r ScanResult) ToScanJSON() ScanJSON {
	out := ScanJSON{Items: make([]ItemJSON, len(r.Items)), Next: r.Next, Token: r.Token.String()}
	for i, it := range r.Items {
		out.Items[i] = ItemJSON{Key: it.Key, Value: it.Value, Revision: it.Revision}
	}
	return out
}

// ErrorBodyOf returns the JSON error body for err.
func ErrorBodyOf(err error) ErrorJSON {
	body := ErrorJSON{Error: ErrorBody{Code: Code(err), Message: err.Error()}}
	if i, ok := FailedOp(err); ok {
		body.Error.Op = &i
	}
	return body
}

// EncodeKey writes a key into a header value: percent-encoded, so that any
