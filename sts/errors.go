package sts

import (
	"errors"
	"fmt"
)

// Code is an OAuth 2.0 error code (RFC 6749 §5.2, RFC 8693 §2.2.2, RFC 8707).
type Code string

// The error codes the exchange returns.
const (
	InvalidRequest       Code = "invalid_request"
	InvalidClient        Code = "invalid_client"
	InvalidTarget        Code = "invalid_target"
	InvalidScope         Code = "invalid_scope"
	UnauthorizedClient   Code = "unauthorized_client"
	UnsupportedGrantType Code = "unsupported_grant_type"
	ServerError          Code = "server_error"
)

// Error is an exchange failure. Description is safe to show to the client:
// it never contains a token, a secret or a claim value. Err is for logs and
// never leaves the process.
type Error struct {
	Code        Code
	Description string
	Err         error
}

func (e *Error) Error() string {
	msg := string(e.Code) + ": " + e.Description
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

func (e *Error) Unwrap() error { return e.Err }

func errorf(code Code, description string, err error) *Error {
	return &Error{Code: code, Description: description, Err: err}
}

// ErrSubjectToken is in the chain of an invalid_request *Error caused by
// the subject token itself — missing, malformed, expired, from an untrusted
// issuer, badly signed or for an audience its issuer is not trusted for —
// as opposed to a policy refusing a valid one. Forward-auth answers the
// former 401 and the latter 403.
var ErrSubjectToken = errors.New("the subject token is invalid")

// subjectErrorf is errorf(InvalidRequest, …) marked with ErrSubjectToken.
func subjectErrorf(description string, err error) *Error {
	return errorf(InvalidRequest, description, markSubject(err))
}

// markSubject puts ErrSubjectToken in front of err's chain.
func markSubject(err error) error {
	if err == nil {
		return ErrSubjectToken
	}
	return fmt.Errorf("%w: %w", ErrSubjectToken, err)
}

// AsError returns the *Error in err's chain, or a server_error wrapping err.
func AsError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return &Error{Code: ServerError, Description: "The token service could not complete the request.", Err: err}
}

// Sentinel errors returned by stores.
var (
	// ErrNotFound: the named resource does not exist.
	ErrNotFound = errors.New("not found")
	// ErrConflict: the write would break a uniqueness rule (two issuers with
	// one URL, two policies for one audience).
	ErrConflict = errors.New("conflict")
	// ErrPreconditionFailed: a conditional write found the resource at
	// another version than the caller expected (or present when it had to be
	// absent); someone else changed it first.
	ErrPreconditionFailed = errors.New("precondition failed")
	// ErrUnavailable: the store cannot be reached; try again later.
	ErrUnavailable = errors.New("store unavailable")
)
