package routes

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/receiver-fanout/fanout/fanout"
	"github.com/receiver-fanout/fanout/routes/routetest"
)

// testSecret is a Standard Webhooks signing secret: whsec_ and the base64
// of 32 bytes.
const testSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSwMfKQ9r8GKYo="

// request is what a test server saw.
type request struct {
	method, path, host string
	header             http.Header
	body               []byte
	contentLength      int64
	user, pass         string
	tls                *tls.ConnectionState
}

// recorder answers every request with status and records it.
type recorder struct {
	status int
	reqs   chan request
}

func newRecorder(status int) *recorder {
	return &recorder{status: status, reqs: make(chan request, 256)}
}

func (rec *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	user, pass, _ := r.BasicAuth()
	rec.reqs <- request{
		method: r.Method, path: r.URL.Path, host: r.Host, header: r.Header.Clone(),
		body: body, contentLength: r.ContentLength, user: user, pass: pass, tls: r.TLS,
	}
	w.WriteHeader(rec.status)
}

func (rec *recorder) last(t *testing.T) request {
	t.Helper()
	select {
	case r := <-rec.reqs:
		return r
	default:
		t.Fatal("the server saw no request")
		return request{}
	}
}

func newServer(t *testing.T, h http.Handler) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

func newHTTPRoute(t *testing.T, o HTTPOptions) *HTTPRoute {
	t.Helper()
	if o.Name == "" {
		o.Name = "billing"
	}
	r, err := NewHTTP(o)
	if err != nil {
		t.Fatalf("NewHTTP: %v", err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return r
}

var testTime = time.Date(2026, 1, 2, 15, 4, 5, 123456789, time.UTC)

func TestHTTPContract(t *testing.T) {
	routetest.Run(t, func(t *testing.T) fanout.Route {
		srv := newServer(t, newRecorder(http.StatusOK))
		return newHTTPRoute(t, HTTPOptions{URL: srv.URL, Workers: 4, SigningSecret: testSecret})
	})
}

func TestHTTPWireFormat(t *testing.T) {
	rec := newRecorder(http.StatusNoContent)
	srv := newServer(t, rec)
	r := newHTTPRoute(t, HTTPOptions{
		URL:           srv.URL + "/hook",
		Headers:       map[string]string{"authorization": "Bearer tok", "X-Tenant": "acme"},
		SigningSecret: testSecret,
	})
	now := time.Now()
	r.now = func() time.Time { return now }
	value := []byte{0x00, 0x01, 0xff, '\r', '\n', '{', '}'}
	key := []byte{0x00, 0xff, 'k'}
	m := fanout.Message{
		Topic: "orders", Partition: 3, Offset: 1 << 40, Attempt: 2, Timestamp: testTime,
		Key: key, Value: value,
		Headers: []fanout.Header{
			{Key: "content-type", Value: []byte("application/json")},
			{Key: "trace-id", Value: []byte("abc")},
			{Key: "trace-id", Value: []byte("def")},
			{Key: "bin", Value: []byte{0xff}},
			{Key: "my header:1", Value: []byte("v")},
			{Key: "ünï%", Value: []byte("x")},
			{Key: "padded", Value: []byte(" p ")},
			{Key: "empty", Value: nil},
		},
	}
	if err := r.Deliver(context.Background(), m); err != nil {
		t.Fatalf("Deliver: %v", err)
	}
	got := rec.last(t)

	if got.method != http.MethodPost || got.path != "/hook" {
		t.Errorf("request = %s %s, want POST /hook", got.method, got.path)
	}
	if !bytes.Equal(got.body, value) || got.contentLength != int64(len(value)) {
		t.Errorf("body = %q (Content-Length %d), want %q", got.body, got.contentLength, value)
	}
	want := map[string]string{
		"Content-Type":            "application/json",
		"X-Fanout-Topic":          "orders",
		"X-Fanout-Partition":      "3",
		"X-Fanout-Offset":         "1099511627776",
		"X-Fanout-Route":          "billing",
		"X-Fanout-Attempt":        "2",
		"X-Fanout-Timestamp":      "2026-01-02T15:04:05.123456789Z",
		"Idempotency-Key":         "orders/3/1099511627776",
		"X-Fanout-Key":            base64.StdEncoding.EncodeToString(key),
		"X-Fanout-Key-Encoding":   "base64",
		"Webhook-Id":              "orders/3/1099511627776",
		"Webhook-Timestamp":       fmt.Sprint(now.Unix()),
		"X-Fanout-Base64-Headers": "X-Fanout-Header-Bin, X-Fanout-Header-Padded",
		"Authorization":           "Bearer tok",
		"X-Tenant":                "acme",
		"User-Agent":              "receiver-fanout",
	}
	for k, v := range want {
		if g := got.header.Values(k); len(g) != 1 || g[0] != v {
			t.Errorf("%s = %q, want [%q]", k, g, v)
		}
	}
	if g := got.header.Values("X-Fanout-Signature"); g != nil {
		t.Errorf("the retired X-Fanout-Signature is still sent: %q", g)
	}
	// A receiver checks the signature with the specification's library.
	verifier, err := standardwebhooks.NewWebhook(testSecret)
	if err != nil {
		t.Fatal(err)
	}
	if err := verifier.Verify(got.body, got.header); err != nil {
		t.Errorf("Standard Webhooks verification of the request: %v (webhook-signature %q)", err, got.header.Get("Webhook-Signature"))
	}
	if sig := got.header.Values("Webhook-Signature"); len(sig) != 1 || !strings.HasPrefix(sig[0], "v1,") {
		t.Errorf("Webhook-Signature = %q, want one v1 signature", sig)
	}

	// Decode the record headers as a receiver following the package
	// documentation would.
	b64 := map[string]bool{}
	for _, n := range strings.Split(got.header.Get("X-Fanout-Base64-Headers"), ",") {
		b64[http.CanonicalHeaderKey(strings.TrimSpace(n))] = true
	}
	decoded := map[string][]string{}
	for name, vs := range got.header {
		suffix, ok := strings.CutPrefix(name, "X-Fanout-Header-")
		if !ok {
			continue
		}
		kafkaName, err := url.PathUnescape(suffix)
		if err != nil {
			t.Fatalf("header %q: %v", name, err)
		}
		kafkaName = strings.ToLower(kafkaName)
		for _, v := range vs {
			if b64[name] {
				raw, err := base64.StdEncoding.DecodeString(v)
				if err != nil {
					t.Fatalf("header %q: %v", name, err)
				}
				v = string(raw)
			}
			decoded[kafkaName] = append(decoded[kafkaName], v)
		}
	}
	wantDecoded := map[string][]string{
		"content-type": {"application/json"},
		"trace-id":     {"abc", "def"},
		"bin":          {"\xff"},
		"my header:1":  {"v"},
		"ünï%":         {"x"},
		"padded":       {" p "},
		"empty":        {""},
	}
	if g, w := fmt.Sprint(decoded), fmt.Sprint(wantDecoded); g != w {
		t.Errorf("decoded record headers:\n got %s\nwant %s", g, w)
	}
}

func TestHTTPKeyAndDefaults(t *testing.T) {
	tests := []struct {
		name        string
		static      map[string]string
		msg         fanout.Message
		key, keyEnc string // "" means absent
		contentType string
		attempt     string
	}{
		{
			name: "printable key is verbatim",
			msg:  fanout.Message{Topic: "t", Key: []byte("order-1"), Attempt: 1},
			key:  "order-1", contentType: "application/octet-stream", attempt: "1",
		},
		{
			name: "key with trailing space is base64",
			msg:  fanout.Message{Topic: "t", Key: []byte("k "), Attempt: 1},
			key:  "ayA=", keyEnc: "base64", contentType: "application/octet-stream", attempt: "1",
		},
		{
			name:        "null key is absent and attempt 0 reads as 1",
			msg:         fanout.Message{Topic: "t"},
			contentType: "application/octet-stream", attempt: "1",
		},
		{
			name:        "configured content type is the default",
			static:      map[string]string{"content-type": "application/json"},
			msg:         fanout.Message{Topic: "t", Attempt: 4},
			contentType: "application/json", attempt: "4",
		},
		{
			name:   "record content type wins, matched case-insensitively",
			static: map[string]string{"Content-Type": "application/json"},
			msg: fanout.Message{Topic: "t", Attempt: 1, Headers: []fanout.Header{
				{Key: "Content-Type", Value: []byte("text/plain; charset=utf-8")},
			}},
			contentType: "text/plain; charset=utf-8", attempt: "1",
		},
		{
			name: "binary record content type is ignored",
			msg: fanout.Message{Topic: "t", Attempt: 1, Headers: []fanout.Header{
				{Key: "content-type", Value: []byte{0xff}},
			}},
			contentType: "application/octet-stream", attempt: "1",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := newRecorder(http.StatusOK)
			srv := newServer(t, rec)
			r := newHTTPRoute(t, HTTPOptions{URL: srv.URL, Headers: tc.static})
			if err := r.Deliver(context.Background(), tc.msg); err != nil {
				t.Fatalf("Deliver: %v", err)
			}
			h := rec.last(t).header
			check := func(name, want string) {
				t.Helper()
				g, present := h[name]
				switch {
				case want == "" && present:
					t.Errorf("%s = %q, want absent", name, g)
				case want != "" && (len(g) != 1 || g[0] != want):
					t.Errorf("%s = %q, want %q", name, g, want)
				}
			}
			check("X-Fanout-Key", tc.key)
			check("X-Fanout-Key-Encoding", tc.keyEnc)
			check("Content-Type", tc.contentType)
			check("X-Fanout-Attempt", tc.attempt)
			check("X-Fanout-Timestamp", "")
		})
	}
}

func TestHTTPEmptyValue(t *testing.T) {
	rec := newRecorder(http.StatusOK)
	srv := newServer(t, rec)
	r := newHTTPRoute(t, HTTPOptions{URL: srv.URL, SigningSecret: testSecret})
	if err := r.Deliver(context.Background(), fanout.Message{Topic: "t"}); err != nil {
		t.Fatalf("Deliver: %v", err)
	}
	got := rec.last(t)
	if len(got.body) != 0 || got.contentLength != 0 {
		t.Errorf("body = %q, Content-Length %d; want empty, 0", got.body, got.contentLength)
	}
	verifier, err := standardwebhooks.NewWebhook(testSecret)
	if err != nil {
		t.Fatal(err)
	}
	if err := verifier.Verify(got.body, got.header); err != nil {
		t.Errorf("Standard Webhooks verification of an empty body: %v", err)
	}
}

// TestHTTPSignatureAsAReceiverChecksIt: what the route sends passes the
// specification's own verifier; a request replayed past the verifier's
// tolerance (5 minutes), a changed body or id, another key and an unsigned
// request are all refused by it.
func TestHTTPSignatureAsAReceiverChecksIt(t *testing.T) {
	rec := newRecorder(http.StatusOK)
	srv := newServer(t, rec)
	r := newHTTPRoute(t, HTTPOptions{URL: srv.URL, SigningSecret: testSecret})
	verifier, err := standardwebhooks.NewWebhook(testSecret)
	if err != nil {
		t.Fatal(err)
	}
	send := func(r *HTTPRoute, sentAt time.Time, body string) request {
		t.Helper()
		r.now = func() time.Time { return sentAt }
		if err := r.Deliver(context.Background(), fanout.Message{Topic: "orders", Partition: 1, Offset: 7, Value: []byte(body)}); err != nil {
			t.Fatalf("Deliver: %v", err)
		}
		return rec.last(t)
	}

	fresh := send(r, time.Now(), `{"id":1}`)
	if err := verifier.Verify(fresh.body, fresh.header); err != nil {
		t.Fatalf("a fresh request is refused: %v", err)
	}
	if fresh.header.Get("Webhook-Id") != "orders/1/7" || fresh.header.Get("Webhook-Id") != fresh.header.Get("Idempotency-Key") {
		t.Errorf("webhook-id %q, Idempotency-Key %q; want both orders/1/7", fresh.header.Get("Webhook-Id"), fresh.header.Get("Idempotency-Key"))
	}

	// Ten minutes is twice the library's tolerance: no clock luck needed.
	replayed := send(r, time.Now().Add(-10*time.Minute), `{"id":1}`)
	if err := verifier.Verify(replayed.body, replayed.header); !errors.Is(err, standardwebhooks.ErrMessageTooOld) {
		t.Errorf("a request signed 10 minutes ago: Verify = %v, want ErrMessageTooOld", err)
	}
	if err := verifier.VerifyIgnoringTimestamp(replayed.body, replayed.header); err != nil {
		t.Errorf("its signature itself should be valid (the refusal is the timestamp's): %v", err)
	}
	ahead := send(r, time.Now().Add(10*time.Minute), `{"id":1}`)
	if err := verifier.Verify(ahead.body, ahead.header); !errors.Is(err, standardwebhooks.ErrMessageTooNew) {
		t.Errorf("a request signed 10 minutes ahead: Verify = %v, want ErrMessageTooNew", err)
	}

	// A captured request with its timestamp moved to now is refused too:
	// the timestamp is signed.
	moved := fresh.header.Clone()
	moved.Set("Webhook-Timestamp", fmt.Sprint(time.Now().Unix()+60))
	if err := verifier.Verify(fresh.body, moved); !errors.Is(err, standardwebhooks.ErrNoMatchingSignature) {
		t.Errorf("a moved timestamp: Verify = %v, want ErrNoMatchingSignature", err)
	}
	otherID := fresh.header.Clone()
	otherID.Set("Webhook-Id", "orders/1/8")
	if err := verifier.Verify(fresh.body, otherID); !errors.Is(err, standardwebhooks.ErrNoMatchingSignature) {
		t.Errorf("another id: Verify = %v, want ErrNoMatchingSignature", err)
	}
	if err := verifier.Verify([]byte(`{"id":2}`), fresh.header); !errors.Is(err, standardwebhooks.ErrNoMatchingSignature) {
		t.Errorf("another body: Verify = %v, want ErrNoMatchingSignature", err)
	}
	other, err := standardwebhooks.NewWebhook("whsec_" + base64.StdEncoding.EncodeToString([]byte("another key of thirty-two bytes!")))
	if err != nil {
		t.Fatal(err)
	}
	if err := other.Verify(fresh.body, fresh.header); !errors.Is(err, standardwebhooks.ErrNoMatchingSignature) {
		t.Errorf("another key: Verify = %v, want ErrNoMatchingSignature", err)
	}

	unsigned := send(newHTTPRoute(t, HTTPOptions{URL: srv.URL}), time.Now(), `{"id":1}`)
	for _, h := range []string{"Webhook-Id", "Webhook-Timestamp", "Webhook-Signature"} {
		if v := unsigned.header.Values(h); v != nil {
			t.Errorf("without a signing secret the route sends %s: %q", h, v)
		}
	}
	if err := verifier.Verify(unsigned.body, unsigned.header); !errors.Is(err, standardwebhooks.ErrRequiredHeaders) {
		t.Errorf("an unsigned request: Verify = %v, want ErrRequiredHeaders", err)
	}
}

// The URL's userinfo is sent as basic auth, unless an Authorization header
// is configured, which wins (as with http.Client, which the route bypasses).
func TestHTTPStaticHostAndURLUserinfo(t *testing.T) {
	deliver := func(headers map[string]string) request {
		t.Helper()
		rec := newRecorder(http.StatusOK)
		srv := newServer(t, rec)
		u, _ := url.Parse(srv.URL)
		u.User = url.UserPassword("svc", "pw")
		r := newHTTPRoute(t, HTTPOptions{URL: u.String(), Headers: headers})
		if err := r.Deliver(context.Background(), fanout.Message{Topic: "t"}); err != nil {
			t.Fatalf("Deliver: %v", err)
		}
		return rec.last(t)
	}
	got := deliver(map[string]string{"Host": "billing.internal"})
	if got.host != "billing.internal" || got.user != "svc" || got.pass != "pw" {
		t.Errorf("host %q, basic auth %q:%q; want billing.internal, svc:pw", got.host, got.user, got.pass)
	}
	got = deliver(map[string]string{"authorization": "Bearer tok"})
	if v := got.header.Values("Authorization"); len(v) != 1 || v[0] != "Bearer tok" {
		t.Errorf("with a configured Authorization: %q, want just Bearer tok", v)
	}
}

func TestHTTPStatusClassification(t *testing.T) {
	var followed atomic.Int32
	mux := http.NewServeMux()
	mux.HandleFunc("/target", func(w http.ResponseWriter, r *http.Request) { followed.Add(1) })
	mux.HandleFunc("/status/{code}", func(w http.ResponseWriter, r *http.Request) {
		var code int
		fmt.Sscan(r.PathValue("code"), &code)
		if code >= 300 && code < 400 {
			w.Header().Set("Location", "/target")
		}
		w.WriteHeader(code)
	})
	srv := newServer(t, mux)
	r := newHTTPRoute(t, HTTPOptions{URL: srv.URL})

	const (
		ok = iota
		retry
		permanent
	)
	tests := []struct {
		code int
		want int
		text string
	}{
		{200, ok, ""},
		{201, ok, ""},
		{202, ok, ""},
		{204, ok, ""},
		{301, permanent, "301 Moved Permanently (redirects are not followed)"},
		{302, permanent, "302 Found (redirects are not followed)"},
		{307, permanent, "307 Temporary Redirect (redirects are not followed)"},
		{308, permanent, "308 Permanent Redirect (redirects are not followed)"},
		{400, permanent, "400 Bad Request"},
		{401, retry, "401 Unauthorized"},
		{403, retry, "403 Forbidden"},
		{404, permanent, "404 Not Found"},
		{409, permanent, "409 Conflict"},
		{413, permanent, "413 Request Entity Too Large"},
		{422, permanent, "422 Unprocessable Entity"},
		{408, retry, "408 Request Timeout"},
		{425, retry, "425 Too Early"},
		{429, retry, "429 Too Many Requests"},
		{500, retry, "500 Internal Server Error"},
		{502, retry, "502 Bad Gateway"},
		{503, retry, "503 Service Unavailable"},
		{504, retry, "504 Gateway Timeout"},
		{599, retry, "599"},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprint(tc.code), func(t *testing.T) {
			r.url = srv.URL + "/status/" + fmt.Sprint(tc.code)
			err := r.Deliver(context.Background(), fanout.Message{Topic: "t", Value: []byte("v")})
			switch tc.want {
			case ok:
				if err != nil {
					t.Fatalf("Deliver = %v, want nil", err)
				}
				return
			case retry:
				if err == nil || errors.Is(err, fanout.ErrPermanent) {
					t.Fatalf("Deliver = %v, want a retryable error", err)
				}
			case permanent:
				if !errors.Is(err, fanout.ErrPermanent) {
					t.Fatalf("Deliver = %v, want a permanent error", err)
				}
			}
			wantMsg := fmt.Sprintf(`http route "billing": POST %s: %s`, srv.URL, tc.text)
			if err.Error() != wantMsg {
				t.Errorf("error = %q\n want %q", err, wantMsg)
			}
			var se *StatusError
			if !errors.As(err, &se) || se.StatusCode != tc.code {
				t.Errorf("errors.As StatusError = %v, want code %d", se, tc.code)
			}
			var ra *fanout.RetryAfterError
			if errors.As(err, &ra) {
				t.Errorf("RetryAfter without a Retry-After header: %v", err)
			}
		})
	}
	if n := followed.Load(); n != 0 {
		t.Errorf("a redirect was followed %d times", n)
	}
}

func TestHTTPRetryAfter(t *testing.T) {
	now := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	tests := []struct {
		name       string
		code       int
		retryAfter string
		want       time.Duration // 0: no RetryAfterError
		permanent  bool
	}{
		{name: "seconds on 429", code: 429, retryAfter: "120", want: 120 * time.Second},
		{name: "seconds on 503", code: 503, retryAfter: " 7 ", want: 7 * time.Second},
		{name: "seconds on 401", code: 401, retryAfter: "30", want: 30 * time.Second},
		{name: "seconds on 403", code: 403, retryAfter: "30", want: 30 * time.Second},
		{name: "date on 503", code: 503, retryAfter: now.Add(90 * time.Second).Format(http.TimeFormat), want: 90 * time.Second},
		{name: "date on 408", code: 408, retryAfter: now.Add(time.Minute).Format(time.RFC850), want: time.Minute},
		{name: "past date", code: 503, retryAfter: now.Add(-time.Hour).Format(http.TimeFormat)},
		{name: "zero", code: 503, retryAfter: "0"},
		{name: "absurd seconds capped", code: 503, retryAfter: "86400000", want: MaxRetryAfter},
		{name: "overflowing seconds capped", code: 503, retryAfter: "99999999999999999999999", want: MaxRetryAfter},
		{name: "far date capped", code: 429, retryAfter: now.AddDate(1, 0, 0).Format(http.TimeFormat), want: MaxRetryAfter},
		{name: "garbage ignored", code: 503, retryAfter: "soon"},
		{name: "negative ignored", code: 503, retryAfter: "-5"},
		{name: "ignored on permanent status", code: 400, retryAfter: "120", permanent: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Retry-After", tc.retryAfter)
				w.WriteHeader(tc.code)
			}))
			r := newHTTPRoute(t, HTTPOptions{URL: srv.URL})
			r.now = func() time.Time { return now }
			err := r.Deliver(context.Background(), fanout.Message{Topic: "t"})
			if err == nil {
				t.Fatal("Deliver = nil")
			}
			if got := errors.Is(err, fanout.ErrPermanent); got != tc.permanent {
				t.Fatalf("permanent = %v, want %v: %v", got, tc.permanent, err)
			}
			var ra *fanout.RetryAfterError
			switch {
			case tc.want == 0 && errors.As(err, &ra):
				t.Fatalf("got RetryAfter %s, want none: %v", ra.After, err)
			case tc.want != 0 && !errors.As(err, &ra):
				t.Fatalf("no RetryAfterError in %v", err)
			case tc.want != 0 && ra.After != tc.want:
				t.Fatalf("After = %s, want %s", ra.After, tc.want)
			}
			var se *StatusError
			if !errors.As(err, &se) || se.StatusCode != tc.code {
				t.Fatalf("status lost in %v", err)
			}
		})
	}
}

// blockingServer holds every request until the test ends (or the client
// goes away) and reports each arrival on the returned channel.
func blockingServer(t *testing.T) (*httptest.Server, <-chan struct{}) {
	t.Helper()
	release := make(chan struct{})
	arrived := make(chan struct{}, 16)
	srv := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(func() { close(release) }) // runs before srv.Close
	return srv, arrived
}

func TestHTTPTimeoutIsRetryable(t *testing.T) {
	srv, _ := blockingServer(t)
	r := newHTTPRoute(t, HTTPOptions{URL: srv.URL, Timeout: 20 * time.Millisecond})
	err := r.Deliver(context.Background(), fanout.Message{Topic: "t"})
	if err == nil || errors.Is(err, fanout.ErrPermanent) {
		t.Fatalf("Deliver = %v, want a retryable error", err)
	}
	if want := fmt.Sprintf(`http route "billing": POST %s: timed out after 20ms`, srv.URL); err.Error() != want {
		t.Errorf("error = %q, want %q", err, want)
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		t.Errorf("the route's own timeout reads as the caller's context ending: %v", err)
	}
	var te interface{ Timeout() bool }
	if !errors.As(err, &te) || !te.Timeout() {
		t.Errorf("error has no Timeout() true: %v", err)
	}
}

func TestHTTPCancelledContext(t *testing.T) {
	srv, arrived := blockingServer(t)
	r := newHTTPRoute(t, HTTPOptions{URL: srv.URL, Timeout: time.Hour})

	t.Run("in flight", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		done := make(chan error, 1)
		go func() { done <- r.Deliver(ctx, fanout.Message{Topic: "t"}) }()
		<-arrived
		cancel()
		err := <-done
		if !errors.Is(err, context.Canceled) || errors.Is(err, fanout.ErrPermanent) {
			t.Fatalf("Deliver = %v, want a non-permanent context.Canceled", err)
		}
		if !strings.HasPrefix(err.Error(), `http route "billing": POST `) {
			t.Errorf("error = %q, want the route named", err)
		}
	})

	t.Run("before the call sends nothing", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if err := r.Deliver(ctx, fanout.Message{Topic: "t"}); !errors.Is(err, context.Canceled) {
			t.Fatalf("Deliver = %v, want context.Canceled", err)
		}
		select {
		case <-arrived:
			t.Fatal("the server saw a request")
		default:
		}
	})
}

// deadAddr returns an address nothing listens on.
func deadAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func TestHTTPConnectionRefusedIsRetryable(t *testing.T) {
	addr := deadAddr(t)
	r := newHTTPRoute(t, HTTPOptions{URL: "http://" + addr + "/hook"})
	err := r.Deliver(context.Background(), fanout.Message{Topic: "t"})
	if err == nil || errors.Is(err, fanout.ErrPermanent) {
		t.Fatalf("Deliver = %v, want a retryable error", err)
	}
	if want := fmt.Sprintf(`http route "billing": POST http://%s/…: `, addr); !strings.HasPrefix(err.Error(), want) {
		t.Errorf("error = %q, want prefix %q", err, want)
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		t.Errorf("error still wraps *url.Error, which repeats the raw URL: %v", err)
	}
	t.Logf("error: %v", err)
	var oe *net.OpError
	if !errors.As(err, &oe) {
		t.Errorf("error does not wrap the *net.OpError: %v", err)
	}
}

func TestHTTPSecretsStayOutOfErrors(t *testing.T) {
	const (
		pass      = "pw-SECRET1"
		query     = "qs-SECRET2"
		bearer    = "hdr-SECRET3"
		inPath    = "path-SECRET5"
		echoedKey = "SECRET"
	)
	// A signing secret whose base64 spells SECRET (24 bytes).
	const signing = "whsec_SECRETSECRETSECRETSECRETSECRETSE"
	// A server that echoes the request, credentials included, in error
	// bodies and redirect targets. The first path segment is the status.
	echo := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var code int
		first, _, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
		fmt.Sscan(first, &code)
		if code >= 300 && code < 400 {
			w.Header().Set("Location", "/next?token="+query)
		}
		w.WriteHeader(code)
		_ = r.Header.Write(w)
		fmt.Fprint(w, r.URL.String())
	})
	srv := newServer(t, echo)
	// A server whose answer is not HTTP but the request line echoed back:
	// the transport's "malformed HTTP response" quotes it.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			line, _ := bufioReadLine(c)
			_, _ = io.WriteString(c, line+"\r\n\r\n")
			_ = c.Close()
		}
	}()
	withSecrets := func(rawURL string) string {
		u, _ := url.Parse(rawURL)
		u.User = url.UserPassword("svc", pass)
		u.Path += "/services/T000/B000/" + inPath
		u.RawQuery = "token=" + query
		return u.String()
	}
	opts := func(rawURL string) HTTPOptions {
		return HTTPOptions{
			URL:           withSecrets(rawURL),
			Headers:       map[string]string{"Authorization": "Bearer " + bearer},
			SigningSecret: signing,
			Timeout:       time.Minute,
		}
	}
	blocking, _ := blockingServer(t)
	cases := map[string]HTTPOptions{
		"500":       opts(srv.URL + "/500"),
		"400":       opts(srv.URL + "/400"),
		"401":       opts(srv.URL + "/401"),
		"302":       opts(srv.URL + "/302"),
		"refused":   opts("http://" + deadAddr(t)),
		"timeout":   func() HTTPOptions { o := opts(blocking.URL); o.Timeout = 10 * time.Millisecond; return o }(),
		"malformed": opts("http://" + ln.Addr().String()),
	}
	for name, o := range cases {
		t.Run(name, func(t *testing.T) {
			r := newHTTPRoute(t, o)
			err := r.Deliver(context.Background(), fanout.Message{Topic: "t", Value: []byte("v")})
			if err == nil {
				t.Fatal("Deliver = nil")
			}
			if strings.Contains(err.Error(), echoedKey) {
				t.Fatalf("error leaks a secret: %v", err)
			}
			if !strings.Contains(err.Error(), "POST http://127.0.0.1:") || !strings.Contains(err.Error(), "/…?…: ") {
				t.Errorf("error does not show the redacted URL: %v", err)
			}
			t.Log(err)
		})
	}

	t.Run("construction", func(t *testing.T) {
		for _, o := range []HTTPOptions{
			{Name: "x", URL: "http://svc:" + pass + "@host/%zz?token=" + query},
			{Name: "x", URL: "http://host/" + inPath + "/%zz"},
			{Name: "x", URL: "ftp://svc:" + pass + "@host/?token=" + query},
			{Name: "x", URL: "http://h/", Headers: map[string]string{"Authorization": "Bearer " + bearer + "\n"}},
			{Name: "x", URL: "http://h/", Headers: map[string]string{"X-Fanout-Auth": bearer}},
			{Name: "x", URL: "http://h/", SigningSecret: "not-whsec-" + echoedKey},
			{Name: "x", URL: "http://h/", SigningSecret: "whsec_" + echoedKey + "!!"},
			{Name: "x", URL: "https://h/", SigningSecret: signing, CAFile: "/nonexistent/ca.pem"},
		} {
			_, err := NewHTTP(o)
			if err == nil {
				t.Fatalf("NewHTTP(%+v) = nil error", o)
			}
			if strings.Contains(err.Error(), echoedKey) {
				t.Fatalf("error leaks a secret: %v", err)
			}
		}
	})
}

func bufioReadLine(c net.Conn) (string, error) {
	var b []byte
	one := make([]byte, 1)
	for {
		if _, err := c.Read(one); err != nil {
			return string(b), err
		}
		if one[0] == '\n' {
			return strings.TrimSuffix(string(b), "\r"), nil
		}
		b = append(b, one[0])
	}
}

// TestHTTPWebhookURLsNeverShowTheirSecret: Slack, Discord, Teams and
// Zapier keep the webhook's credential in the URL path. It appears in no
// error of the route, hence in no log line, and in no fanout-error header
// of a dead-letter record.
func TestHTTPWebhookURLsNeverShowTheirSecret(t *testing.T) {
	webhooks := []struct{ name, path, secret string }{
		{"slack", "/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX", "XXXXXXXXXXXXXXXXXXXXXXXX"},
		{"discord", "/api/webhooks/123456789012345678/AbCdEfGhIjKlMnOpQrStUvWxYz-0123456789", "AbCdEfGhIjKlMnOpQrStUvWxYz-0123456789"},
		{"teams", "/webhookb2/1f0e7f0c-0000-4000-8000-000000000000@72f988bf-0000-4000-8000-000000000000/IncomingWebhook/5c9d0a1b2c3d4e5f/0b1c2d3e-0000-4000-8000-000000000000", "5c9d0a1b2c3d4e5f"},
		{"zapier", "/hooks/catch/1234567/abcdefg/", "abcdefg"},
	}
	for _, code := range []int{http.StatusInternalServerError, http.StatusNotFound, http.StatusForbidden} {
		srv := newServer(t, newRecorder(code))
		for _, w := range webhooks {
			r := newHTTPRoute(t, HTTPOptions{Name: w.name, URL: srv.URL + w.path})
			err := r.Deliver(context.Background(), fanout.Message{Topic: "t", Value: []byte("v")})
			if err == nil || strings.Contains(err.Error(), w.secret) || strings.Contains(err.Error(), w.path) {
				t.Errorf("%s, status %d: error %v shows the path", w.name, code, err)
			}
			if want := fmt.Sprintf("http route %q: POST %s/…: %d", w.name, srv.URL, code); err == nil || !strings.HasPrefix(err.Error(), want) {
				t.Errorf("%s: error %v, want it to start %q", w.name, err, want)
			}
		}
	}

	// The dead-letter record carries the route's error in fanout-error.
	p, addrs := newKafka(t, "orders.dlq")
	cl, err := p.Get(nil, "orders.dlq", "dead_letter_topic")
	if err != nil {
		t.Fatal(err)
	}
	srv := newServer(t, newRecorder(http.StatusBadRequest))
	for _, w := range webhooks {
		r := newHTTPRoute(t, HTTPOptions{Name: w.name, URL: srv.URL + w.path})
		m := fanout.Message{Topic: "orders", Value: []byte("v")}
		cause := r.Deliver(context.Background(), m)
		if !errors.Is(cause, fanout.ErrPermanent) {
			t.Fatalf("%s: Deliver = %v, want a permanent 400", w.name, cause)
		}
		if err := DeadLetter(cl, "orders.dlq", w.name)(context.Background(), m, cause, 1); err != nil {
			t.Fatal(err)
		}
	}
	for _, rec := range consume(t, addrs, "orders.dlq", len(webhooks)) {
		var route, msg string
		for _, h := range rec.Headers {
			switch h.Key {
			case DLQHeaderRoute:
				route = string(h.Value)
			case DLQHeaderError:
				msg = string(h.Value)
			}
		}
		if !strings.Contains(msg, "400 Bad Request") || !strings.Contains(msg, srv.URL+"/…") {
			t.Errorf("%s: fanout-error %q, want the status and the redacted URL", route, msg)
		}
		for _, w := range webhooks {
			if strings.Contains(msg, w.secret) {
				t.Errorf("%s: fanout-error %q shows the %s secret", route, msg, w.name)
			}
		}
	}
}

func TestNewHTTPErrors(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		o    HTTPOptions
		want string
	}{
		{"empty name", HTTPOptions{URL: "http://h/"}, `http route "": name: is empty`},
		{"control in name", HTTPOptions{Name: "a\nb", URL: "http://h/"}, "name: contains control characters"},
		{"empty url", HTTPOptions{Name: "b"}, `http route "b": url: required`},
		{"topic in label", HTTPOptions{Name: "b", Topic: "orders"}, `http route "b" (topic "orders"): url: required`},
		{"unparsable url", HTTPOptions{Name: "b", URL: "http://h:port/"}, `http route "b": url: must be an absolute http or https URL with a host`},
		{"signing secret of another form", HTTPOptions{Name: "b", URL: "http://h/", SigningSecret: "s3cret"}, `http route "b": signing_secret: must be a Standard Webhooks secret: whsec_ and the base64 of 24 to 64 random bytes`},
		{"reserved signing header", HTTPOptions{Name: "b", URL: "http://h/", Headers: map[string]string{"webhook-signature": "v1,x"}}, `headers["webhook-signature"]: is set by the http route itself`},
		{"relative url", HTTPOptions{Name: "b", URL: "/events"}, "url: must be an absolute http or https URL with a host"},
		{"wrong scheme", HTTPOptions{Name: "b", URL: "ftp://h/"}, "url: must be an absolute http or https URL with a host"},
		{"no host", HTTPOptions{Name: "b", URL: "http:///path"}, "url: must be an absolute http or https URL with a host"},
		{"fragment", HTTPOptions{Name: "b", URL: "http://h/#x"}, "url: must not have a #fragment"},
		{"bad port", HTTPOptions{Name: "b", URL: "http://h:99999/"}, "url: has an invalid port"},
		{"negative timeout", HTTPOptions{Name: "b", URL: "http://h/", Timeout: -time.Second}, "timeout: is negative"},
		{"negative workers", HTTPOptions{Name: "b", URL: "http://h/", Workers: -1}, "workers: is negative"},
		{"bad header name", HTTPOptions{Name: "b", URL: "http://h/", Headers: map[string]string{"Bad Name": "v"}}, `headers["Bad Name"]: is not a valid header name`},
		{"bad header value", HTTPOptions{Name: "b", URL: "http://h/", Headers: map[string]string{"X-A": "v\r\nX-B: 1"}}, `headers["X-A"]: value must not contain control characters`},
		{"header twice", HTTPOptions{Name: "b", URL: "http://h/", Headers: map[string]string{"X-A": "a", "x-a": "b"}}, `headers["x-a"]: duplicates header X-A`},
		{"reserved prefix", HTTPOptions{Name: "b", URL: "http://h/", Headers: map[string]string{"x-fanout-topic": "v"}}, `headers["x-fanout-topic"]: is set by the http route itself`},
		{"reserved idempotency key", HTTPOptions{Name: "b", URL: "http://h/", Headers: map[string]string{"Idempotency-Key": "v"}}, `headers["Idempotency-Key"]: is set by the http route itself`},
		{"reserved framing", HTTPOptions{Name: "b", URL: "http://h/", Headers: map[string]string{"Content-Length": "1"}}, `headers["Content-Length"]: is set by the http route itself`},
		{"reserved upgrade", HTTPOptions{Name: "b", URL: "http://h/", Headers: map[string]string{"Upgrade": "h2c"}}, `headers["Upgrade"]: is set by the http route itself`},
		{"tls on http", HTTPOptions{Name: "b", URL: "http://h/", InsecureSkipVerify: true}, "tls: only applies to https URLs"},
		{"missing ca", HTTPOptions{Name: "b", URL: "https://h/", CAFile: filepath.Join(dir, "missing.pem")}, "tls.ca_file: cannot read it: no such file"},
		{"ca not pem", HTTPOptions{Name: "b", URL: "https://h/", CAFile: notPEM}, "tls.ca_file: holds no PEM certificate"},
		{"cert without key", HTTPOptions{Name: "b", URL: "https://h/", CertFile: notPEM}, "tls.key_file: required with cert_file"},
		{"bad key pair", HTTPOptions{Name: "b", URL: "https://h/", CertFile: notPEM, KeyFile: notPEM}, "tls.cert_file: does not load with key_file"},
		{"every problem at once", HTTPOptions{Name: "b", URL: "ftp://h/", Timeout: -time.Second, Headers: map[string]string{"Upgrade": "x"}}, `url: must be an absolute http or https URL with a host; timeout: is negative: -1s; headers["Upgrade"]: is set`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := NewHTTP(tc.o)
			if err == nil {
				r.Close()
				t.Fatal("NewHTTP = nil error")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %q, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestHTTPConnectionPoolSizedByWorkers(t *testing.T) {
	r := newHTTPRoute(t, HTTPOptions{URL: "http://h/", Workers: 7})
	tr := r.client.Transport.(*http.Transport)
	if tr.MaxConnsPerHost != 7 || tr.MaxIdleConnsPerHost != 7 {
		t.Fatalf("MaxConnsPerHost %d, MaxIdleConnsPerHost %d; want 7, 7", tr.MaxConnsPerHost, tr.MaxIdleConnsPerHost)
	}
	if r.timeout != 0 {
		t.Fatalf("timeout = %s, want none of the route's own (the engine bounds each attempt)", r.timeout)
	}
}

func TestHTTPReusesConnectionsAfterErrors(t *testing.T) {
	var conns atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
		w.Write(bytes.Repeat([]byte("e"), 16<<10)) // drained, not left unread
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	r := newHTTPRoute(t, HTTPOptions{URL: srv.URL, Workers: 1})
	for range 10 {
		if err := r.Deliver(context.Background(), fanout.Message{Topic: "t"}); err == nil {
			t.Fatal("Deliver = nil, want 503")
		}
	}
	if n := conns.Load(); n != 1 {
		t.Fatalf("opened %d connections for 10 sequential requests, want 1", n)
	}
}

func TestHTTPClientOverrideNeverFollowsRedirects(t *testing.T) {
	var followed atomic.Int32
	mux := http.NewServeMux()
	mux.HandleFunc("/hook", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/next", http.StatusFound) })
	mux.HandleFunc("/next", func(w http.ResponseWriter, r *http.Request) { followed.Add(1) })
	srv := newServer(t, mux)
	client := srv.Client()
	r := newHTTPRoute(t, HTTPOptions{URL: srv.URL + "/hook", Client: client})
	if err := r.Deliver(context.Background(), fanout.Message{Topic: "t"}); !errors.Is(err, fanout.ErrPermanent) {
		t.Fatalf("Deliver = %v, want a permanent error", err)
	}
	if followed.Load() != 0 {
		t.Fatal("the redirect was followed")
	}
	if client.CheckRedirect != nil {
		t.Fatal("the caller's client was modified")
	}
}

// quietTLSServer starts a TLS server whose handshake failures do not spam
// the test log.
func quietTLSServer(t *testing.T, h http.Handler, cfg *tls.Config) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.TLS = cfg
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

func writePEM(t *testing.T, name, typ string, der []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestHTTPTLSWithCAFile(t *testing.T) {
	rec := newRecorder(http.StatusOK)
	srv := quietTLSServer(t, rec, nil)
	caFile := writePEM(t, "ca.pem", "CERTIFICATE", srv.Certificate().Raw)

	t.Run("trusted CA", func(t *testing.T) {
		r := newHTTPRoute(t, HTTPOptions{URL: srv.URL, CAFile: caFile})
		if err := r.Deliver(context.Background(), fanout.Message{Topic: "t"}); err != nil {
			t.Fatalf("Deliver: %v", err)
		}
		if rec.last(t).tls == nil {
			t.Fatal("request was not over TLS")
		}
	})
	t.Run("unknown CA is retryable", func(t *testing.T) {
		r := newHTTPRoute(t, HTTPOptions{URL: srv.URL})
		err := r.Deliver(context.Background(), fanout.Message{Topic: "t"})
		var ue x509.UnknownAuthorityError
		if !errors.As(err, &ue) || errors.Is(err, fanout.ErrPermanent) {
			t.Fatalf("Deliver = %v, want a retryable x509.UnknownAuthorityError", err)
		}
	})
	t.Run("insecure skip verify", func(t *testing.T) {
		r := newHTTPRoute(t, HTTPOptions{URL: srv.URL, InsecureSkipVerify: true})
		if err := r.Deliver(context.Background(), fanout.Message{Topic: "t"}); err != nil {
			t.Fatalf("Deliver: %v", err)
		}
		rec.last(t)
	})
}

// testPKI is a CA with a server certificate for 127.0.0.1 and a client
// certificate, written to PEM files.
type testPKI struct {
	caPool                *x509.CertPool
	caFile                string
	server                tls.Certificate
	clientCert, clientKey string
	otherCert, otherKey   string // client cert from a CA the server does not trust
	clientName            string
}

func newTestPKI(t *testing.T) testPKI {
	t.Helper()
	newKey := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	serial := int64(0)
	issue := func(tmpl *x509.Certificate, key *ecdsa.PrivateKey, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) *x509.Certificate {
		serial++
		tmpl.SerialNumber = big.NewInt(serial)
		tmpl.NotBefore = time.Now().Add(-time.Hour)
		tmpl.NotAfter = time.Now().Add(time.Hour)
		if parent == nil {
			parent, parentKey = tmpl, key
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
		if err != nil {
			t.Fatal(err)
		}
		c, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	newCA := func(name string) (*x509.Certificate, *ecdsa.PrivateKey) {
		k := newKey()
		return issue(&x509.Certificate{
			Subject: pkix.Name{CommonName: name}, IsCA: true, BasicConstraintsValid: true,
			KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		}, k, nil, nil), k
	}
	keyPEM := func(name string, k *ecdsa.PrivateKey) string {
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return writePEM(t, name, "PRIVATE KEY", der)
	}

	ca, caKey := newCA("fanout test CA")
	other, otherKey := newCA("untrusted CA")

	srvKey := newKey()
	srvCert := issue(&x509.Certificate{
		Subject:     pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		DNSNames:    []string{"localhost"},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}, srvKey, ca, caKey)

	clientCert := func(name string, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (string, string) {
		k := newKey()
		c := issue(&x509.Certificate{
			Subject:     pkix.Name{CommonName: name},
			KeyUsage:    x509.KeyUsageDigitalSignature,
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		}, k, parent, parentKey)
		return writePEM(t, name+".pem", "CERTIFICATE", c.Raw), keyPEM(name+"-key.pem", k)
	}

	p := testPKI{caPool: x509.NewCertPool(), clientName: "fanout-client"}
	p.caPool.AddCert(ca)
	p.caFile = writePEM(t, "ca.pem", "CERTIFICATE", ca.Raw)
	p.server = tls.Certificate{Certificate: [][]byte{srvCert.Raw}, PrivateKey: srvKey, Leaf: srvCert}
	p.clientCert, p.clientKey = clientCert(p.clientName, ca, caKey)
	p.otherCert, p.otherKey = clientCert("intruder", other, otherKey)
	return p
}

func TestHTTPMutualTLS(t *testing.T) {
	pki := newTestPKI(t)
	rec := newRecorder(http.StatusOK)
	srv := quietTLSServer(t, rec, &tls.Config{
		Certificates: []tls.Certificate{pki.server},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    pki.caPool,
	})

	t.Run("client certificate accepted", func(t *testing.T) {
		r := newHTTPRoute(t, HTTPOptions{URL: srv.URL, CAFile: pki.caFile, CertFile: pki.clientCert, KeyFile: pki.clientKey})
		if err := r.Deliver(context.Background(), fanout.Message{Topic: "t"}); err != nil {
			t.Fatalf("Deliver: %v", err)
		}
		got := rec.last(t)
		if got.tls == nil || len(got.tls.PeerCertificates) == 0 || got.tls.PeerCertificates[0].Subject.CommonName != pki.clientName {
			t.Fatalf("server did not see client certificate %q", pki.clientName)
		}
	})

	for name, o := range map[string]HTTPOptions{
		"no client certificate":   {URL: srv.URL, CAFile: pki.caFile},
		"untrusted client issuer": {URL: srv.URL, CAFile: pki.caFile, CertFile: pki.otherCert, KeyFile: pki.otherKey},
	} {
		t.Run(name+" is retryable", func(t *testing.T) {
			r := newHTTPRoute(t, o)
			err := r.Deliver(context.Background(), fanout.Message{Topic: "t"})
			if err == nil || errors.Is(err, fanout.ErrPermanent) {
				t.Fatalf("Deliver = %v, want a retryable error", err)
			}
			if !strings.Contains(err.Error(), `http route "billing"`) {
				t.Fatalf("error does not name the route: %v", err)
			}
			t.Logf("error: %v", err)
		})
	}
	if n := len(rec.reqs); n != 0 {
		t.Fatalf("%d requests without a valid client certificate got through", n)
	}
}

func TestEncodeHeaderName(t *testing.T) {
	for in, want := range map[string]string{
		"trace-id":     "trace-id",
		"a_b.c~d|e":    "a_b.c~d|e",
		"has space":    "has%20space",
		"a:b":          "a%3Ab",
		"50%":          "50%25",
		"ü":            "%C3%BC",
		"":             "",
		"(x),[y];{z}@": "%28x%29%2C%5By%5D%3B%7Bz%7D%40",
	} {
		got := encodeHeaderName(in)
		if got != want {
			t.Errorf("encodeHeaderName(%q) = %q, want %q", in, got, want)
		}
		if in != "" && !validToken(got) {
			t.Errorf("encodeHeaderName(%q) = %q is not a token", in, got)
		}
		if back, err := url.PathUnescape(got); err != nil || back != in {
			t.Errorf("PathUnescape(%q) = %q, %v; want %q", got, back, err, in)
		}
	}
}

func TestVerbatimSafe(t *testing.T) {
	for in, want := range map[string]bool{
		"":              true,
		"abc def":       true,
		"a\tb":          true,
		"~!@#$%^&*()":   true,
		" lead":         false,
		"trail ":        false,
		"\ttab":         false,
		"new\nline":     false,
		"nul\x00":       false,
		"del\x7f":       false,
		"caf\xc3\xa9":   false,
		"latin1\xe9":    false,
		"base64:AAAA==": true,
	} {
		if got := verbatimSafe([]byte(in)); got != want {
			t.Errorf("verbatimSafe(%q) = %v, want %v", in, got, want)
		}
	}
}

// newRequest assigns its headers to the map directly, without
// canonicalising them: every name it uses must already be canonical.
func TestWireHeaderNamesAreCanonical(t *testing.T) {
	for _, name := range []string{"Content-Type", HeaderTopic, HeaderPartition, HeaderOffset, HeaderRoute,
		HeaderAttempt, HeaderTimestamp, HeaderKey, HeaderKeyEncoding, HeaderIdempotencyKey,
		HeaderWebhookID, HeaderWebhookTimestamp, HeaderWebhookSignature} {
		if c := http.CanonicalHeaderKey(name); c != name {
			t.Errorf("header %q is not canonical (%q)", name, c)
		}
	}
}
