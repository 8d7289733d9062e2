package graphapi

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	presence "github.com/presenced/presenced"
)

// statusOf is the one table from domain error codes to HTTP statuses.
func statusOf(code presence.Code) int {
	switch code {
	case presence.CodeBadRequest, presence.CodeInvalidArgument, presence.CodeInvalidRequest, presence.CodeExtensionError:
		return http.StatusBadRequest
	case presence.CodeInvalidAuthenticationToken:
		return http.StatusUnauthorized
	case presence.CodeForbidden:
		return http.StatusForbidden
	case presence.CodeNotFound:
		return http.StatusNotFound
	case presence.CodeMethodNotAllowed:
		return http.StatusMethodNotAllowed
	case presence.CodeTooManyRequests:
		return http.StatusTooManyRequests
	case presence.CodeRequestTooLarge:
		return http.StatusRequestEntityTooLarge
	case presence.CodeUnavailable:
		return http.StatusServiceUnavailable
	default:
		return http.StatusInternalServerError
	}
}

// wireCode is the code a response carries; a 405 is BadRequest on the wire,
// as Graph sends it.
func wireCode(code presence.Code) presence.Code {
	if code == presence.CodeMethodNotAllowed {
		return presence.CodeBadRequest
	}
	return code
}

// throttled is the error of a request over the rate limit (or another
// cap); it carries the seconds to wait, and a message instead of Graph's
// when set.
type throttled struct {
	retryAfter int
	message    string
}

func (t *throttled) Error() string { return "throttled for " + strconv.Itoa(t.retryAfter) + "s" }

// envelope is Graph's error body.
type envelope struct {
	Error envelopeError `json:"error"`
}

type envelopeError struct {
	Code       string     `json:"code"`
	Message    string     `json:"message"`
	InnerError innerError `json:"innerError"`
}

type innerError struct {
	Code            string `json:"code,omitempty"`
	Date            string `json:"date"`
	Message         string `json:"message,omitempty"`
	RequestID       string `json:"request-id"`
	ClientRequestID string `json:"client-request-id"`
	Status          string `json:"status,omitempty"`
}

// writeError turns err into a Graph error response. Domain errors keep their
// code and message; anything else is logged with the request id and answered
// as a generic internal error.
func writeError(w http.ResponseWriter, r *http.Request, logger *slog.Logger, now time.Time, err error) {
	ids := idsOf(w, r)
	env := envelope{Error: envelopeError{InnerError: innerError{
		Date:            now.UTC().Format("2006-01-02T15:04:05"),
		RequestID:       ids.request,
		ClientRequestID: ids.client,
	}}}
	var status int
	var de *presence.Error
	var th *throttled
	switch {
	case errors.As(err, &th):
		status = http.StatusTooManyRequests
		env.Error.Code = string(presence.CodeTooManyRequests)
		env.Error.Message = "Please retry again later."
		if th.message != "" {
			env.Error.Message = th.message
		}
		env.Error.InnerError.Code = "429"
		env.Error.InnerError.Status = "429"
		env.Error.InnerError.Message = "Please retry after"
		w.Header().Set("Retry-After", strconv.Itoa(th.retryAfter))
	case errors.As(err, &de):
		status = statusOf(de.Code)
		if de.Status != 0 {
			status = de.Status
		}
		env.Error.Code = string(wireCode(de.Code))
		env.Error.Message = de.Message
		if de.Code == presence.CodeUnavailable {
			w.Header().Set("Retry-After", strconv.Itoa(unavailableRetryAfter))
			logger.WarnContext(r.Context(), "request failed: service unavailable", "request_id", ids.request, "method", r.Method, "path", r.URL.Path, "err", err)
		}
	default:
		status = http.StatusInternalServerError
		env.Error.Code = string(presence.CodeInternal)
		env.Error.Message = "An internal error occurred."
		logger.ErrorContext(r.Context(), "request failed", "request_id", ids.request, "method", r.Method, "path", r.URL.Path, "err", err)
	}
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize", client_id="00000003-0000-0000-c000-000000000000"`)
	}
	body, _ := json.Marshal(env)
	writeJSON(w, status, body)
}

// unavailableRetryAfter is the Retry-After, in seconds, of a 503: the store
// is expected back within seconds (a Redis failover, freed disk space).
const unavailableRetryAfter = 2

// odataJSON is the content type of every JSON body presenced sends.
const odataJSON = "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8"

func writeJSON(w http.ResponseWriter, status int, body []byte) {
	// One backing array for the three values instead of one each (what
	// Header.Set allocates); each a full slice, so an Add copies first.
	vals := [...]string{odataJSON, "4.0", strconv.Itoa(len(body))}
	h := w.Header()
	h["Content-Type"] = vals[0:1:1]
	h[hdrODataVersion] = vals[1:2:2]
	h["Content-Length"] = vals[2:3:3]
	w.WriteHeader(status)
	_, _ = w.Write(body)
}
