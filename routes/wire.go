package routes

// The HTTP route's wire encoding: how a record becomes a request (headers,
// key and header encodings, the Standard Webhooks signature) and how a
// Retry-After value is read. The route itself is in http.go.

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/receiver-fanout/fanout/fanout"
)

// Wire header names. See the package documentation for their meaning.
const (
	HeaderTopic          = "X-Fanout-Topic"
	HeaderPartition      = "X-Fanout-Partition"
	HeaderOffset         = "X-Fanout-Offset"
	HeaderRoute          = "X-Fanout-Route"
	HeaderAttempt        = "X-Fanout-Attempt"
	HeaderTimestamp      = "X-Fanout-Timestamp"
	HeaderKey            = "X-Fanout-Key"
	HeaderKeyEncoding    = "X-Fanout-Key-Encoding"
	HeaderRecordPrefix   = "X-Fanout-Header-"
	HeaderBase64Headers  = "X-Fanout-Base64-Headers"
	HeaderIdempotencyKey = "Idempotency-Key"

	// Standard Webhooks 1.0 signing, with HTTPOptions.SigningSecret.
	HeaderWebhookID        = "Webhook-Id"
	HeaderWebhookTimestamp = "Webhook-Timestamp"
	HeaderWebhookSignature = "Webhook-Signature"
)

// wireHeaders is the most headers newRequest sets per record besides the
// record's own and the static ones.
const wireHeaders = 12

func (r *HTTPRoute) newRequest(ctx context.Context, m *fanout.Message) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.url, bytes.NewReader(m.Value))
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, err
	}
	if r.host != "" {
		req.Host = r.host
	}
	// The header map is sized for everything set below, and the values
	// of one request share one array: the keys are canonical constants
	// (TestWireHeaderNamesAreCanonical), so they are assigned directly.
	// Values that never change (the static headers, the route's name,
	// the default Content-Type) are the route's own slices; net/http only
	// reads a request's headers.
	h := make(http.Header, len(r.static)+wireHeaders+len(m.Headers))
	req.Header = h
	for k, vs := range r.static {
		h[k] = vs
	}
	vals := make([]string, 0, wireHeaders)
	set := func(k, v string) {
		vals = append(vals, v)
		n := len(vals)
		h[k] = vals[n-1 : n : n]
	}

	h["Content-Type"] = r.contentTypeVals
	for _, rh := range m.Headers {
		if strings.EqualFold(rh.Key, "content-type") {
			if len(rh.Value) > 0 && verbatimSafe(rh.Value) {
				set("Content-Type", string(rh.Value))
			}
			break
		}
	}

	topic, partition, offset := m.Topic, strconv.FormatInt(int64(m.Partition), 10), strconv.FormatInt(m.Offset, 10)
	id := topic + "/" + partition + "/" + offset
	set(HeaderTopic, topic)
	set(HeaderPartition, partition)
	set(HeaderOffset, offset)
	h[HeaderRoute] = r.nameVals
	set(HeaderAttempt, strconv.Itoa(max(m.Attempt, 1)))
	set(HeaderIdempotencyKey, id)
	if !m.Timestamp.IsZero() {
		set(HeaderTimestamp, m.Timestamp.UTC().Format(time.RFC3339Nano))
	}
	if len(m.Key) > 0 {
		if verbatimSafe(m.Key) {
			set(HeaderKey, string(m.Key))
		} else {
			set(HeaderKey, base64.StdEncoding.EncodeToString(m.Key))
			set(HeaderKeyEncoding, "base64")
		}
	}
	setRecordHeaders(h, m.Headers)
	if r.key != nil {
		ts := strconv.FormatInt(r.now().Unix(), 10)
		set(HeaderWebhookID, id)
		set(HeaderWebhookTimestamp, ts)
		set(HeaderWebhookSignature, "v1,"+sign(r.key, id, ts, m.Value))
	}
	return req, nil
}

// sign is the Standard Webhooks 1.0 signature: the standard base64 of
// HMAC-SHA256(key, "<id>.<timestamp>.<body>"). It is written here rather
// than taken from the specification's Go library, which formats the
// signed content into a string (a copy of every body); the tests check it
// against that library.
func sign(key []byte, id, timestamp string, body []byte) string {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id))
	mac.Write([]byte{'.'})
	mac.Write([]byte(timestamp))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// setRecordHeaders adds the record's headers as X-Fanout-Header-<Name>.
//
// Names: bytes that are HTTP token characters pass through, except '%'; any
// other byte (and '%') becomes %XX. Decoding the suffix with percent
// decoding restores the Kafka header name, up to case, which HTTP does not
// preserve.
//
// Values: sent verbatim when printable ASCII without leading or trailing
// whitespace. Otherwise every value of that HTTP header name is sent in
// standard base64 and the name is listed in X-Fanout-Base64-Headers, so
// repeated Kafka headers keep their order and each name has one encoding.
func setRecordHeaders(h http.Header, hs []fanout.Header) {
	if len(hs) == 0 {
		return
	}
	names := make([]string, len(hs))
	var b64 map[string]bool
	for i, rh := range hs {
		names[i] = http.CanonicalHeaderKey(HeaderRecordPrefix + encodeHeaderName(rh.Key))
		if !verbatimSafe(rh.Value) {
			if b64 == nil {
				b64 = make(map[string]bool)
			}
			b64[names[i]] = true
		}
	}
	var listed []string
	for i, rh := range hs {
		name := names[i]
		if !b64[name] {
			h[name] = append(h[name], string(rh.Value))
			continue
		}
		if _, seen := h[name]; !seen {
			listed = append(listed, name)
		}
		h[name] = append(h[name], base64.StdEncoding.EncodeToString(rh.Value))
	}
	if len(listed) > 0 {
		h.Set(HeaderBase64Headers, strings.Join(listed, ", "))
	}
}

// parseRetryAfter reads a Retry-After value in either form, delta-seconds
// or HTTP-date, capped at MaxRetryAfter. A date in the past yields 0.
func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if isDigits(v) {
		secs, err := strconv.ParseInt(v, 10, 64)
		if err != nil || secs > int64(MaxRetryAfter/time.Second) {
			return MaxRetryAfter, true // overflow is still "a very long time"
		}
		return time.Duration(secs) * time.Second, true
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	d := t.Sub(now)
	if d < 0 {
		d = 0
	}
	return min(d, MaxRetryAfter), true
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// isTokenChar reports whether c is an RFC 9110 tchar.
func isTokenChar(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

func validToken(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isTokenChar(s[i]) {
			return false
		}
	}
	return s != ""
}

// validHeaderValue is net/http's rule for values it will send: no control
// characters other than tab.
func validHeaderValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < ' ' && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

// verbatimSafe reports whether b survives as a header value unchanged
// through any HTTP stack: printable ASCII (tab allowed inside), no leading
// or trailing whitespace (parsers trim it), no bytes above 0x7e (which
// intermediaries decode as Latin-1 or reject).
func verbatimSafe(b []byte) bool {
	for _, c := range b {
		if (c < ' ' && c != '\t') || c > '~' {
			return false
		}
	}
	if n := len(b); n > 0 {
		if b[0] == ' ' || b[0] == '\t' || b[n-1] == ' ' || b[n-1] == '\t' {
			return false
		}
	}
	return true
}

// encodeHeaderName percent-encodes every byte of a Kafka header name that is
// not an HTTP token character, and '%' itself, so the result is a token and
// decodes back unambiguously.
func encodeHeaderName(k string) string {
	const hexDigits = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(k); i++ {
		c := k[i]
		if isTokenChar(c) && c != '%' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hexDigits[c>>4])
		b.WriteByte(hexDigits[c&0xf])
	}
	return b.String()
}
