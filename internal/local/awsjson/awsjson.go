// Package awsjson holds the small pieces of the AWS JSON protocols
// (awsJson1_0 and awsJson1_1) that the local stand-ins share: request
// checks, error encoding and request ids.
//
// Wire facts encoded here (as the real services and the aws-sdk-go-v2
// deserializers use them):
//   - every operation is POST / with header X-Amz-Target: <Service>.<Operation>
//     and Content-Type application/x-amz-json-1.0 or -1.1;
//   - an error is an HTTP 4xx/5xx whose JSON body carries "__type" (the
//     error shape name, optionally prefixed "namespace#") and "message";
//     the SDK also reads the X-Amzn-ErrorType header, which we send too;
//   - every answer carries X-Amzn-Requestid.
package awsjson

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// Error is a service error as the awsJson protocols encode it.
type Error struct {
	Status  int
	Type    string
	Message string
}

func (e *Error) Error() string { return e.Type + ": " + e.Message }

// Errorf builds an *Error.
func Errorf(status int, typ, format string, args ...any) *Error {
	return &Error{Status: status, Type: typ, Message: fmt.Sprintf(format, args...)}
}

// RequestID returns a fresh request id in the UUID form AWS uses.
func RequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = (b[6] & 0x0f) | 0x40
	b[8] = (b[8] & 0x3f) | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// Request is a decoded awsJson request.
type Request struct {
	Operation string
	Body      []byte
}

// Decode checks the protocol envelope (method, path, content type, target
// prefix, a SigV4 Authorization header for signingName) and returns the
// operation name and body. maxBody bounds the body size.
func Decode(r *http.Request, contentType, targetPrefix, signingName string, maxBody int64) (*Request, *Error) {
	if r.Method != http.MethodPost || r.URL.Path != "/" {
		return nil, Errorf(http.StatusNotFound, "UnknownOperationException", "awsJson operations are POST /")
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, contentType) {
		return nil, Errorf(http.StatusBadRequest, "SerializationException", "unexpected Content-Type %q, want %s", ct, contentType)
	}
	auth := r.Header.Get("Authorization")
	if !strings.HasPrefix(auth, "AWS4-HMAC-SHA256 ") || !strings.Contains(auth, "/"+signingName+"/aws4_request") {
		return nil, Errorf(http.StatusBadRequest, "MissingAuthenticationTokenException",
			"request is not SigV4-signed for service %q", signingName)
	}
	target := r.Header.Get("X-Amz-Target")
	op, ok := strings.CutPrefix(target, targetPrefix+".")
	if !ok || op == "" {
		return nil, Errorf(http.StatusBadRequest, "UnknownOperationException", "unknown X-Amz-Target %q", target)
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		return nil, Errorf(http.StatusBadRequest, "SerializationException", "reading body: %v", err)
	}
	if int64(len(body)) > maxBody {
		return nil, Errorf(http.StatusRequestEntityTooLarge, "RequestEntityTooLargeException", "request body larger than %d bytes", maxBody)
	}
	return &Request{Operation: op, Body: body}, nil
}

// WriteError writes e as the awsJson protocols do.
func WriteError(w http.ResponseWriter, contentType string, e *Error) {
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("X-Amzn-Requestid", RequestID())
	w.Header().Set("X-Amzn-ErrorType", e.Type)
	w.WriteHeader(e.Status)
	_ = json.NewEncoder(w).Encode(map[string]string{"__type": e.Type, "message": e.Message})
}

// WriteJSON writes a 200 answer with v as its body; a nil v writes an
// empty body (what Step Functions documents for SendTask*).
func WriteJSON(w http.ResponseWriter, contentType string, v any) {
	var b []byte
	if v != nil {
		var err error
		if b, err = json.Marshal(v); err != nil {
			WriteError(w, contentType, Errorf(http.StatusInternalServerError, "InternalFailure", "encoding answer"))
			return
		}
	}
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("X-Amzn-Requestid", RequestID())
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b)
}
