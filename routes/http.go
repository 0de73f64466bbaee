package routes

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/receiver-fanout/fanout/config"
	"github.com/receiver-fanout/fanout/fanout"
	"github.com/receiver-fanout/fanout/internal/redact"
)

// DefaultHTTPTimeout is the per-request timeout of an HTTP route whose
// HTTPOptions.Timeout is zero: the receivers file's default, which owns it.
const DefaultHTTPTimeout = config.DefaultHTTPTimeout

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
	// drain included. Zero means DefaultHTTPTimeout.
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
	// whsec_<base64 of the key> (see config.SigningKey); the key is the
	// decoded bytes.
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
// format or the transport owns them.
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
	key         []byte // signing key; nil: requests are not signed
	client      *http.Client

	now func() time.Time // for Retry-After dates and signatures; replaced in tests
}

var (
	_ fanout.Route = (*HTTPRoute)(nil)
	_ io.Closer    = (*HTTPRoute)(nil)
)

// NewHTTP builds an HTTP route, reading the CA and client certificate files
// now so that a bad file fails at startup. Errors name the route, the
// option and the file, never a header value or the secret.
func NewHTTP(o HTTPOptions) (*HTTPRoute, error) {
	label := fmt.Sprintf("http route %q", o.Name)
	if o.Topic != "" {
		label = fmt.Sprintf("http route %q (topic %q)", o.Name, o.Topic)
	}
	fail := func(format string, args ...any) (*HTTPRoute, error) {
		return nil, fmt.Errorf(label+": "+format, args...)
	}

	if o.Name == "" {
		return fail("name is empty")
	}
	if !validHeaderValue(o.Name) {
		return fail("name contains control characters")
	}
	if o.URL == "" {
		return fail("url is empty")
	}
	u, err := url.Parse(o.URL)
	if err != nil {
		// Any detail of the parse error may quote the URL's secret parts.
		return fail("url does not parse as a URL")
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fail("url: scheme must be http or https, not %q", u.Scheme)
	}
	if u.Host == "" {
		return fail("url: no host")
	}
	if o.Timeout < 0 {
		return fail("timeout is negative: %s", o.Timeout)
	}
	if o.Workers < 0 {
		return fail("workers is negative: %d", o.Workers)
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
	if r.timeout == 0 {
		r.timeout = DefaultHTTPTimeout
	}
	if o.SigningSecret != "" {
		if r.key, err = config.SigningKey(o.SigningSecret); err != nil {
			return fail("signing_secret %v", err)
		}
	}
	r.static.Set("User-Agent", "receiver-fanout")
	for name, value := range o.Headers {
		if !validToken(name) {
			return fail("header name %q is not a valid HTTP token", name)
		}
		canon := http.CanonicalHeaderKey(name)
		if reservedHeaders[canon] || strings.HasPrefix(canon, "X-Fanout-") {
			return fail("header %q is set by the route and cannot be configured", canon)
		}
		if !validHeaderValue(value) {
			// Never echo the value: it is likely a credential.
			return fail("header %q: value contains control characters", canon)
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

	if o.Client != nil {
		c := *o.Client
		c.CheckRedirect = noRedirect
		r.client = &c
		return r, nil
	}

	tlsSet := o.CAFile != "" || o.CertFile != "" || o.KeyFile != "" || o.InsecureSkipVerify
	if tlsSet && u.Scheme != "https" {
		return fail("ca_file, cert_file, key_file and insecure_skip_verify need an https url")
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if tlsSet {
		cfg := &tls.Config{
			MinVersion:         tls.VersionTLS12,
			InsecureSkipVerify: o.InsecureSkipVerify, //nolint:gosec // operator's explicit choice
		}
		if o.CAFile != "" {
			pem, err := os.ReadFile(o.CAFile)
			if err != nil {
				return fail("ca_file: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return fail("ca_file %q: no PEM certificates found", o.CAFile)
			}
			cfg.RootCAs = pool
		}
		if (o.CertFile == "") != (o.KeyFile == "") {
			return fail("cert_file and key_file must be set together")
		}
		if o.CertFile != "" {
			cert, err := tls.LoadX509KeyPair(o.CertFile, o.KeyFile)
			if err != nil {
				return fail("cert_file %q, key_file %q: %w", o.CertFile, o.KeyFile, err)
			}
			cfg.Certificates = []tls.Certificate{cert}
		}
		tr.TLSClientConfig = cfg
	}
	if o.Workers > 0 {
		tr.MaxConnsPerHost = o.Workers
		tr.MaxIdleConnsPerHost = o.Workers
		tr.MaxIdleConns = max(tr.MaxIdleConns, o.Workers)
	}
	r.client = &http.Client{Transport: tr, CheckRedirect: noRedirect}
	return r, nil
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
	reqCtx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()

	req, err := r.newRequest(reqCtx, &m)
	if err != nil {
		return fanout.Permanent(r.wrap(err))
	}
	resp, err := r.client.Do(req)
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
