package presence

import (
	"errors"
	"fmt"
)

// Code is a Graph error code. The HTTP layer maps each code to a status in
// one table; the domain only says what went wrong.
type Code string

// The error codes the presence domain produces.
const (
	CodeBadRequest                 Code = "BadRequest"
	CodeInvalidArgument            Code = "InvalidArgument"
	CodeInvalidAuthenticationToken Code = "InvalidAuthenticationToken"
	CodeForbidden                  Code = "Forbidden"
	CodeNotFound                   Code = "NotFound"
	CodeMethodNotAllowed           Code = "MethodNotAllowed"
	CodeTooManyRequests            Code = "TooManyRequests"
	CodeRequestTooLarge            Code = "RequestEntityTooLarge"
	CodeInvalidRequest             Code = "InvalidRequest"
	CodeExtensionError             Code = "ExtensionError"
	CodeInternal                   Code = "generalException"
	CodeUnavailable                Code = "serviceNotAvailable"
)

// Error is a domain error: a Graph code and a message for the developer.
type Error struct {
	Code    Code
	Message string
	// Status, when not zero, is the HTTP status to answer with; otherwise
	// the code decides it. Graph sends some codes (ExtensionError) with
	// several statuses.
	Status int
}

// Error implements the error interface.
func (e *Error) Error() string {
	if e.Message == "" {
		return string(e.Code)
	}
	return string(e.Code) + ": " + e.Message
}

// Is matches another *Error with the same code, so errors.Is(err,
// &Error{Code: CodeNotFound}) works on wrapped errors.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code && (t.Message == "" || t.Message == e.Message)
}

// Errorf returns an *Error with a formatted message.
func Errorf(code Code, format string, args ...any) *Error {
	if len(args) == 0 {
		return &Error{Code: code, Message: format}
	}
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the Graph code of err, or CodeInternal when err carries
// none.
func ErrorCode(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return CodeInternal
}

// ErrNotFound matches any not-found domain error with errors.Is.
var ErrNotFound = &Error{Code: CodeNotFound}

// ErrUnavailable matches, with errors.Is, every error made by Unavailable:
// a dependency of the service (the store) cannot serve right now, and the
// same request may succeed later. The HTTP layer answers it 503 with
// Retry-After.
var ErrUnavailable = &Error{Code: CodeUnavailable, Message: "The service is temporarily unavailable. Please retry later."}

// Unavailable wraps cause as a temporary failure that matches
// ErrUnavailable; the cause stays reachable with errors.Is and errors.As.
// A nil cause gives nil.
func Unavailable(cause error) error {
	if cause == nil {
		return nil
	}
	return &unavailableError{cause: cause}
}

type unavailableError struct{ cause error }

func (e *unavailableError) Error() string   { return "unavailable: " + e.cause.Error() }
func (e *unavailableError) Unwrap() []error { return []error{ErrUnavailable, e.cause} }
