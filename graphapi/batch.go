package graphapi

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	presence "github.com/presenced/presenced"
)

// maxBatch is Graph's limit of requests in one JSON batch.
const maxBatch = 20

type batchRequest struct {
	ID        string            `json:"id"`
	Method    string            `json:"method"`
	URL       string            `json:"url"`
	Headers   map[string]string `json:"headers"`
	Body      json.RawMessage   `json:"body"`
	DependsOn []string          `json:"dependsOn"`
}

// batchResponse is one answer of a batch. Headers is always sent, as an
// empty object when the inner response had none worth passing on (a 200
// action); Body is left out when the inner response had none.
type batchResponse struct {
	ID      string            `json:"id"`
	Status  int               `json:"status"`
	Headers map[string]string `json:"headers"`
	Body    json.RawMessage   `json:"body,omitempty"`
}

// ParseBatch parses and checks a JSON batch body: 1 to 20 requests with
// unique ids, known methods, relative URLs, a Content-Type header wherever a
// body is given, and dependsOn naming other requests of the batch without a
// cycle. It returns the requests in an order that runs every request after
// the ones it depends on.
func ParseBatch(data []byte) ([]batchRequest, error) {
	bad := func(format string, args ...any) error {
		return presence.Errorf(presence.CodeBadRequest, format, args...)
	}
	var body struct {
		Requests []batchRequest `json:"requests"`
	}
	if err := json.Unmarshal(data, &body); err != nil {
		return nil, bad(msgBadPayload)
	}
	reqs := body.Requests
	switch {
	case len(reqs) == 0:
		return nil, bad("Invalid batch payload format: the batch contains no requests.")
	case len(reqs) > maxBatch:
		return nil, bad("Invalid batch payload format: the number of requests exceeds the limit of %d.", maxBatch)
	}
	index := make(map[string]int, len(reqs))
	for i, r := range reqs {
		if r.ID == "" {
			return nil, bad("Invalid batch payload format: every request needs an id.")
		}
		if _, dup := index[r.ID]; dup {
			return nil, bad("Invalid batch payload format: the request id '%s' is used twice.", r.ID)
		}
		index[r.ID] = i
		switch strings.ToUpper(r.Method) {
		case "GET", "POST", "PATCH", "PUT", "DELETE":
		default:
			return nil, bad("Invalid batch payload format: the method '%s' of request '%s' is not supported.", r.Method, r.ID)
		}
		u, err := url.Parse(r.URL)
		if r.URL == "" || err != nil || u.IsAbs() || u.Host != "" {
			return nil, bad("Invalid batch payload format: the url of request '%s' must be relative.", r.ID)
		}
		if len(r.Body) > 0 && !bytes.Equal(r.Body, []byte("null")) && headerValue(r.Headers, "Content-Type") == "" {
			return nil, bad("Invalid batch payload format: request '%s' has a body but no Content-Type header.", r.ID)
		}
	}
	// Order by dependencies (Kahn), keeping request order among equals.
	order := make([]batchRequest, 0, len(reqs))
	done := make([]bool, len(reqs))
	for len(order) < len(reqs) {
		progressed := false
		for i, r := range reqs {
			if done[i] {
				continue
			}
			ready := true
			for _, d := range r.DependsOn {
				j, ok := index[d]
				if !ok || j == i {
					return nil, bad("Invalid batch payload format: request '%s' depends on an unknown request '%s'.", r.ID, d)
				}
				if !done[j] {
					ready = false
				}
			}
			if ready {
				done[i] = true
				order = append(order, r)
				progressed = true
			}
		}
		if !progressed {
			return nil, bad("Invalid batch payload format: the dependsOn references form a cycle.")
		}
	}
	return order, nil
}

func headerValue(h map[string]string, name string) string {
	for k, v := range h {
		if strings.EqualFold(k, name) {
			return v
		}
	}
	return ""
}

func (s *Server) batch(w http.ResponseWriter, r *http.Request, c *call) error {
	if c.outer != nil {
		return presence.Errorf(presence.CodeBadRequest, "A batch request cannot contain another batch request.")
	}
	// The inner requests and their errors take the batch's ids from its
	// context.
	r = r.WithContext(context.WithValue(r.Context(), idsKey, idsOf(w, r)))
	data, err := readJSON(r)
	if err != nil {
		return err
	}
	reqs, err := ParseBatch(data)
	if err != nil {
		return err
	}
	// The answers are written as they come, one at a time: a batch of 20
	// requests for 650 users each holds one inner answer in memory, not
	// all twenty and their encoding.
	h := w.Header()
	h.Set("Content-Type", odataJSON)
	h.Set(hdrODataVersion, "4.0")
	w.WriteHeader(http.StatusOK)
	bw := bufio.NewWriterSize(w, 32<<10)
	_, _ = bw.WriteString(`{"responses":[`)
	status := make(map[string]int, len(reqs))
	for i, br := range reqs {
		failed := slices.ContainsFunc(br.DependsOn, func(d string) bool { return status[d] < 200 || status[d] > 299 })
		var resp batchResponse
		if failed {
			resp = s.failedDependency(r, br.ID)
		} else {
			resp = s.runInner(r.Context(), r, c, br)
		}
		status[br.ID] = resp.Status
		enc, err := json.Marshal(resp)
		if err != nil { // a body that json.Valid passed cannot fail to encode
			enc, _ = json.Marshal(batchResponse{ID: br.ID, Status: http.StatusInternalServerError, Headers: map[string]string{}})
		}
		if i > 0 {
			_ = bw.WriteByte(',')
		}
		_, _ = bw.Write(enc)
	}
	_, _ = bw.WriteString("]}")
	_ = bw.Flush()
	return nil
}

// failedDependency is the 424 of a request whose dependency failed.
func (s *Server) failedDependency(r *http.Request, id string) batchResponse {
	rec := newRecorder()
	err := presence.Errorf("FailedDependency", "The dependency of request '%s' failed.", id)
	err.Status = http.StatusFailedDependency
	writeError(rec, r, s.logger, time.Now(), err)
	return rec.response(id)
}

// runInner runs one request of a batch through the same routes, as the
// outer request's principal.
func (s *Server) runInner(ctx context.Context, outer *http.Request, c *call, br batchRequest) batchResponse {
	target := "/" + c.version + "/" + strings.TrimPrefix(br.URL, "/")
	var body []byte
	if len(br.Body) > 0 && !bytes.Equal(br.Body, []byte("null")) {
		body = br.Body
	}
	inner, err := http.NewRequestWithContext(ctx, strings.ToUpper(br.Method), target, bytes.NewReader(body))
	rec := newRecorder()
	if err != nil {
		writeError(rec, outer, s.logger, time.Now(), presence.Errorf(presence.CodeBadRequest, "The url of request '%s' is invalid.", br.ID))
		return rec.response(br.ID)
	}
	inner.Host = outer.Host
	inner.TLS = outer.TLS
	for k, v := range br.Headers {
		inner.Header.Set(k, v)
	}
	id := ids{request: presence.NewGUID(), client: inner.Header.Get(hdrClientRequestID)}
	if id.client == "" {
		id.client = requestIDs(ctx).client
	}
	inner = inner.WithContext(context.WithValue(ctx, idsKey, id))
	s.serve(rec, inner, c)
	return rec.response(br.ID)
}

// recorder captures an inner response of a batch.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func newRecorder() *recorder { return &recorder{header: make(http.Header)} }

func (r *recorder) Header() http.Header { return r.header }

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.body.Write(b)
}

func (r *recorder) response(id string) batchResponse {
	resp := batchResponse{ID: id, Status: r.status, Headers: map[string]string{}}
	if resp.Status == 0 {
		resp.Status = http.StatusOK
	}
	for _, k := range []string{"Content-Type", "Retry-After", "Location", "Allow", "WWW-Authenticate"} {
		if v := r.header.Get(k); v != "" {
			resp.Headers[k] = v
		}
	}
	if r.body.Len() > 0 && json.Valid(r.body.Bytes()) {
		resp.Body = json.RawMessage(r.body.Bytes())
	}
	return resp
}
