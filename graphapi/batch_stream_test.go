package graphapi_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	presence "github.com/presenced/presenced"
	"github.com/presenced/presenced/graphapi"
	"github.com/presenced/presenced/memstore"
)

// maxWriteRecorder remembers the largest single Write.
type maxWriteRecorder struct {
	*httptest.ResponseRecorder
	maxWrite int
}

func (m *maxWriteRecorder) Write(p []byte) (int, error) {
	m.maxWrite = max(m.maxWrite, len(p))
	return m.ResponseRecorder.Write(p)
}

// A $batch of 20 requests for 650 users each is written answer by answer,
// never encoded whole in memory: no single write carries more than a
// couple of the answers.
func TestBatchIsStreamed(t *testing.T) {
	svc := presence.NewService(memstore.New(), presence.NewTestClock(time.Date(2026, 1, 12, 9, 0, 0, 0, time.UTC)), nil)
	srv, err := graphapi.NewServer(graphapi.Config{Service: svc, Auth: fixedAuth{appPrincipal()}})
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]string, 650)
	for i := range ids {
		ids[i] = fmt.Sprintf("00000000-0000-4000-8000-%012d", i)
	}
	idsJSON, _ := json.Marshal(map[string]any{"ids": ids})
	var reqs []string
	for i := range 20 {
		reqs = append(reqs, fmt.Sprintf(`{"id":"%d","method":"POST","url":"/communications/getPresencesByUserId","headers":{"Content-Type":"application/json"},"body":%s}`, i, idsJSON))
	}
	body := `{"requests":[` + strings.Join(reqs, ",") + `]}`
	req := httptest.NewRequest(http.MethodPost, "/v1.0/$batch", bytes.NewReader([]byte(body)))
	req.Header.Set("Authorization", "Bearer good")
	req.Header.Set("Content-Type", "application/json")
	rec := &maxWriteRecorder{ResponseRecorder: httptest.NewRecorder()}
	srv.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d: %.300s", rec.Code, rec.Body)
	}
	var out struct {
		Responses []struct {
			Status int `json:"status"`
			Body   struct {
				Value []json.RawMessage `json:"value"`
			} `json:"body"`
		} `json:"responses"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil || len(out.Responses) != 20 {
		t.Fatalf("bad batch answer (%v, %d responses)", err, len(out.Responses))
	}
	for i, r := range out.Responses {
		if r.Status != http.StatusOK || len(r.Body.Value) != 650 {
			t.Fatalf("answer %d: status %d, %d values", i, r.Status, len(r.Body.Value))
		}
	}
	if total := rec.Body.Len(); rec.maxWrite > total/8 {
		t.Fatalf("one write of %d bytes for a %d-byte answer: the batch is held whole", rec.maxWrite, total)
	}
	if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("Content-Type %q", ct)
	}
}
