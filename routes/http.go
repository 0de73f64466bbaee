package routes

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/receiver-fanout/fanout/fanout"
	"github.com/receiver-fanout/fanout/internal/redact"
	"github.com/receiver-fanout/fanout/internal/tlsfiles"
)

// MaxRetryAfter caps the wait a Retry-After response header can ask for. A
// server asking for more (or a clock far off) still gets its retry after
// MaxRetryAfter, so one bad response cannot park a route for days.
const MaxRetryAfter = time.Hour

// maxDrain bounds how much of a response body is read before closing it. A
// fully read body lets the transport reuse the connection; a body larger than
// this costs a new connection instead of unbounded reading.
const maxDrain = 64 << 10

// HTTPOptions configures an HTTP route. The zero value of every optional
// field works.
type HTTPOptions struct {
	// Name is the route name: sent as X-Fanout-Route and used in errors.
	// Required.
	Name string
	// Topic is the receiver's topic, used only in construction errors.
	Topic string
	// URL is the http or https endpoint records are POSTed to. Userinfo in
	// the URL is sent as basic auth. Errors show only its scheme and host
	// (redact.URL): user info, query and path (where Slack, Discord, Teams
	// and Zapier keep their secret) never appear in one.
	URL string
	// Timeout bounds one request, response headers and the bounded body
	// drain included. Zero sets no bound of the route's own: the engine
	// bounds every delivery attempt (fanout.RouteConfig.Timeout).
	Timeout time.Duration
	// Headers are sent with every request. Names must be HTTP tokens. The
	// names the wire format owns (X-Fanout-*, Idempotency-Key and the
	// framing headers Content-Length, Transfer-Encoding, Connection, ...)
	// are rejected. Content-Type is allowed and replaces
	// application/octet-stream as the default for records without a
	// content-type header. Host sets the request's Host.
	Headers map[string]string
	// SigningSecret, when set, signs every request the Standard Webhooks
	// 1.0 way: Webhook-Id (the Idempotency-Key value), Webhook-Timestamp
	// (Unix seconds of the attempt) and Webhook-Signature: v1,<base64
	// HMAC-SHA256 of "<id>.<timestamp>.<body>">. It is written
	// whsec_<base64 of the key> (see SigningKey); the key is the decoded
	// bytes.
	SigningSecret string
	// CAFile is a PEM bundle of roots trusted for the server, replacing the
	// system roots. CertFile and KeyFile are a PEM client certificate and
	// key for mutual TLS; set both or neither. All three require an https
	// URL.
	CAFile, CertFile, KeyFile string
	// InsecureSkipVerify disables server certificate verification.
	InsecureSkipVerify bool
	// Workers is the route's worker count; it sizes the connection pool
	// (MaxConnsPerHost and MaxIdleConnsPerHost), so every worker can hold a
	// connection and none are opened beyond that. Zero leaves the pool
	// unbounded with the net/http idle default.
	Workers int
	// Client replaces the route's own client (for tests). Timeout still
	// applies per request; the TLS options and Workers are ignored. The
	// route uses a shallow copy that never follows redirects.
	Client *http.Client
}

// reservedHeaders may not be set through HTTPOptions.Headers: the wire
// format or the transport owns them. It is the program's one list: the
// receivers file's http.headers are checked by NewHTTP, for validate and
// run alike.
var reservedHeaders = map[string]bool{
	"Content-Length":    true,
	"Transfer-Encoding": true,
	"Connection":        true,
	"Keep-Alive":        true,
	"Proxy-Connection":  true,
	"Upgrade":           true,
	"Te":                true,
	"Trailer":           true,
	"Idempotency-Key":   true,
	"Webhook-Id":        true,
	"Webhook-Timestamp": true,
	"Webhook-Signature": true,
}

// HTTPRoute POSTs each record to a URL; see the package documentation for
// the wire format and how responses are classified. It is safe for
// concurrent use. It owns the connections of its client until Close.
type HTTPRoute struct {
	name        string
	url         string            // as configured; used for requests
	safeURL     string            // redact.URL(url): scheme and host; used in errors
	scrub       *strings.Replacer // removes url's hidden parts from error texts
	timeout     time.Duration
	static      http.Header
	host        string
	contentType string // default Content-Type
	// contentTypeVals and nameVals are the values of Content-Type (the
	// default) and X-Fanout-Route, shared by every request.
	contentTypeVals, nameVals []string
	key                       []byte // signing key; nil: requests are not signed
	client                    *http.Client
	// rt, when set, is client's transport, called directly: http.Client's
	// Do clones every request's headers (for redirects, which the route
	// never follows) and would add the URL's userinfo as basic auth, which
	// the static headers carry instead. nil with HTTPOptions.Client.
	rt http.RoundTripper

	now func() time.Time // for Retry-After dates and signatures; replaced in tests
}

var (
	_ fanout.Route = (*HTTPRoute)(nil)
	_ io.Closer    = (*HTTPRoute)(nil)
)

// OptionError is one problem with an HTTPOptions field. Field is spelt as
// the receivers file spells it under a route's http: "url", "timeout",
// "signing_secret", "headers", "tls", "tls.ca_file", and so on; Key is the
// header name for a problem of one header.
type OptionError struct {
	Field, Key string
	Msg        string
}

func (e *OptionError) Error() string {
	if e.Key != "" {
		return fmt.Sprintf("%s[%q]: %s", e.Field, e.Key, e.Msg)
	}
	return e.Field + ": " + e.Msg
}

// NewHTTP builds an HTTP route, reading the CA and client certificate files
// and decoding the signing secret now, so that a bad file or secret fails
// at startup. It reports every problem at once, joined, each an
// *OptionError naming its field, behind a prefix naming the route; errors
// never contain a header value or the secret, and show only the URL's
// scheme and host. It opens no connection.
func NewHTTP(o HTTPOptions) (*HTTPRoute, error) {
	var problems []error
	bad := func(field, format string, args ...any) {
		problems = append(problems, &OptionError{Field: field, Msg: fmt.Sprintf(format, args...)})
	}
	badHeader := func(name, format string, args ...any) {
		problems = append(problems, &OptionError{Field: "headers", Key: name, Msg: fmt.Sprintf(format, args...)})
	}
	if o.Name == "" {
		bad("name", "is empty")
	} else if !validHeaderValue(o.Name) {
		bad("name", "contains control characters")
	}
	var u *url.URL
	switch parsed, err := url.Parse(o.URL); {
	case o.URL == "":
		bad("url", "required")
	case err != nil || (parsed.Scheme != "http" && parsed.Scheme != "https") || parsed.Host == "" || parsed.Hostname() == "":
		// Any detail of the parse error may quote the URL's secret parts.
		bad("url", "must be an absolute http or https URL with a host")
	case parsed.Fragment != "":
		bad("url", "must not have a #fragment, which is never sent")
	case !validPort(parsed.Port()):
		bad("url", "has an invalid port")
	default:
		u = parsed
	}
	if o.Timeout < 0 {
		bad("timeout", "is negative: %s", o.Timeout)
	}
	if o.Workers < 0 {
		bad("workers", "is negative: %d", o.Workers)
	}

	r := &HTTPRoute{
		name:        o.Name,
		url:         o.URL,
		safeURL:     redact.URL(o.URL),
		scrub:       redact.Replacer(o.URL),
		timeout:     o.Timeout,
		static:      make(http.Header, len(o.Headers)+1),
		contentType: "application/octet-stream",
		now:         time.Now,
	}
	if o.SigningSecret != "" {
		key, err := SigningKey(o.SigningSecret)
		if err != nil {
			bad("signing_secret", "%v", err)
		}
		r.key = key
	}
	r.static.Set("User-Agent", "receiver-fanout")
	seen := make(map[string]string, len(o.Headers))
	for _, name := range sortedHeaderNames(o.Headers) {
		value := o.Headers[name]
		canon := http.CanonicalHeaderKey(name)
		other, dup := seen[canon]
		seen[canon] = name
		switch {
		case dup:
			badHeader(name, "duplicates header %s: header names are case-insensitive", other)
			continue
		case !validToken(name):
			badHeader(name, "is not a valid header name (an HTTP token)")
			continue
		case reservedHeaders[canon] || strings.HasPrefix(canon, "X-Fanout-"):
			badHeader(name, "is set by the http route itself and cannot be configured")
			continue
		case !validHeaderValue(value):
			// Never echo the value: it is likely a credential.
			badHeader(name, "value must not contain control characters")
			continue
		}
		switch canon {
		case "Host":
			r.host = value
		case "Content-Type":
			if value != "" {
				r.contentType = value
			}
		default:
			r.static.Set(canon, value)
		}
	}

	var tr *http.Transport
	if o.Client == nil {
		tr = http.DefaultTransport.(*http.Transport).Clone()
		files := tlsfiles.Files{CAFile: o.CAFile, CertFile: o.CertFile, KeyFile: o.KeyFile, InsecureSkipVerify: o.InsecureSkipVerify}
		if files != (tlsfiles.Files{}) {
			if u != nil && u.Scheme != "https" {
				bad("tls", "only applies to https URLs")
			}
			cfg, err := tlsfiles.Config(files)
			for _, e := range unwrapJoined(err) {
				var fe *tlsfiles.Error
				if errors.As(e, &fe) {
					bad("tls."+string(fe.Field), "%s", fe.Msg)
				} else {
					bad("tls", "%v", e)
				}
			}
			tr.TLSClientConfig = cfg
		}
		if o.Workers > 0 {
			tr.MaxConnsPerHost = o.Workers
			tr.MaxIdleConnsPerHost = o.Workers
			tr.MaxIdleConns = max(tr.MaxIdleConns, o.Workers)
		}
	}
	if len(problems) > 0 {
		label := fmt.Sprintf("http route %q", o.Name)
		if o.Topic != "" {
			label = fmt.Sprintf("http route %q (topic %q)", o.Name, o.Topic)
		}
		return nil, &HTTPOptionsError{Route: label, Problems: problems}
	}
	r.contentTypeVals, r.nameVals = []string{r.contentType}, []string{r.name}
	if u.User != nil && r.static.Get("Authorization") == "" {
		// What http.Client does for a URL with userinfo, once.
		pass, _ := u.User.Password()
		r.static.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(u.User.Username()+":"+pass)))
	}
	if o.Client != nil {
		c := *o.Client
		c.CheckRedirect = noRedirect
		r.client = &c
		return r, nil
	}
	r.client = &http.Client{Transport: tr, CheckRedirect: noRedirect}
	r.rt = tr
	return r, nil
}

// HTTPOptionsError is every problem NewHTTP found, each an *OptionError.
type HTTPOptionsError struct {
	Route    string // "http route \"billing\" (topic \"orders\")"
	Problems []error
}

func (e *HTTPOptionsError) Error() string {
	var b strings.Builder
	for i, p := range e.Problems {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(p.Error())
	}
	return e.Route + ": " + b.String()
}

// Unwrap returns the problems, for errors.As.
func (e *HTTPOptionsError) Unwrap() []error { return e.Problems }

// unwrapJoined returns the errors errors.Join put together, or err alone.
func unwrapJoined(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

func sortedHeaderNames(h map[string]string) []string {
	names := make([]string, 0, len(h))
	for k := range h {
		names = append(names, k)
	}
	slices.Sort(names)
	return names
}

// validPort reports whether a URL's port (empty: the scheme's) is usable.
func validPort(port string) bool {
	if port == "" {
		return true
	}
	n, err := strconv.Atoi(port)
	return err == nil && n >= 1 && n <= 65535
}

// noRedirect hands 3xx responses back to Deliver. Following them would turn
// a 301/302/303 into a body-less GET that may well answer 200, acknowledging
// a record that was never delivered.
func noRedirect(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// Name returns the route name.
func (r *HTTPRoute) Name() string { return r.name }

// Close closes the client's idle connections. Connections in use close when
// their request ends. The route stays usable: a later Deliver dials again.
func (r *HTTPRoute) Close() error {
	r.client.CloseIdleConnections()
	return nil
}

// Deliver POSTs m and classifies the outcome: nil for 2xx; a retryable
// error for 401, 403, 408, 425, 429, 5xx, a timeout or a transport failure
// (wrapped in fanout.RetryAfter when the response carries a usable
// Retry-After); a fanout.Permanent error for any other status. When ctx
// itself ends, the error wraps ctx.Err().
func (r *HTTPRoute) Deliver(ctx context.Context, m fanout.Message) error {
	if err := ctx.Err(); err != nil {
		return r.wrap(err)
	}
	reqCtx, cancel := ctx, context.CancelFunc(func() {})
	if r.timeout > 0 {
		reqCtx, cancel = context.WithTimeout(ctx, r.timeout)
	}
	defer cancel()

	req, err := r.newRequest(reqCtx, &m)
	if err != nil {
		return fanout.Permanent(r.wrap(err))
	}
	var resp *http.Response
	if r.rt != nil {
		resp, err = r.rt.RoundTrip(req)
	} else {
		resp, err = r.client.Do(req)
	}
	if err != nil {
		switch {
		case ctx.Err() != nil:
			return r.wrap(ctx.Err())
		case reqCtx.Err() != nil:
			return r.wrap(&timeoutError{after: r.timeout})
		}
		// url.Error repeats the request URL with its query string.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return r.wrap(err)
	}
	// Read what is cheap to read so the connection can be reused. The body
	// stays out of errors: servers echo requests, credentials included.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxDrain))
	_ = resp.Body.Close()
	return r.classify(resp)
}

func (r *HTTPRoute) classify(resp *http.Response) error {
	code := resp.StatusCode
	switch {
	case code >= 200 && code <= 299:
		return nil
	// 401 and 403 say the route's credentials are wrong or expired, not the
	// record: retrying congests the route and alerts, where a permanent
	// error would dead-letter every record after one attempt.
	case code == http.StatusUnauthorized, code == http.StatusForbidden,
		code == http.StatusRequestTimeout, code == http.StatusTooEarly,
		code == http.StatusTooManyRequests, code >= 500 && code <= 599:
		err := r.wrap(&StatusError{StatusCode: code})
		if d, ok := parseRetryAfter(resp.Header.Get("Retry-After"), r.now()); ok && d > 0 {
			return fanout.RetryAfter(err, d)
		}
		return err
	default:
		return fanout.Permanent(r.wrap(&StatusError{StatusCode: code}))
	}
}

// wrap prefixes err with the route, method and redacted URL. The text of
// err goes through the scrubber too, in case it quotes the URL (a server
// echoing the request line in a malformed answer, say); errors.Is and As
// still see err.
func (r *HTTPRoute) wrap(err error) error {
	return &routeError{msg: fmt.Sprintf("http route %q: POST %s: %s", r.name, r.safeURL, r.scrub.Replace(err.Error())), err: err}
}

// routeError is an error of the route whose text was checked for secrets.
type routeError struct {
	msg string
	err error
}

func (e *routeError) Error() string { return e.msg }
func (e *routeError) Unwrap() error { return e.err }

// StatusError is an HTTP response status the route did not accept. Use
// errors.As to read the code.
type StatusError struct {
	StatusCode int
}

func (e *StatusError) Error() string {
	s := strconv.Itoa(e.StatusCode)
	if t := http.StatusText(e.StatusCode); t != "" {
		s += " " + t
	}
	if e.StatusCode >= 300 && e.StatusCode <= 399 {
		s += " (redirects are not followed)"
	}
	return s
}

// timeoutError is the route's own per-request timeout. It deliberately does
// not wrap context.DeadlineExceeded, which would read as "the caller's
// context ended".
type timeoutError struct{ after time.Duration }

func (e *timeoutError) Error() string { return "timed out after " + e.after.String() }
func (e *timeoutError) Timeout() bool { return true }
