// Package routes holds the fanout.Route implementations: HTTP, log and
// discard (Kafka and dead-letter live beside them). Every route is safe for
// concurrent Deliver calls and treats the fanout.Message as read-only.
//
// # Goroutines
//
// Routes start no goroutines of their own. An HTTPRoute's transport keeps
// connection reader and writer goroutines for idle keep-alive connections;
// Close releases them, so the engine should Close routes (io.Closer) after
// their workers stopped.
//
// # HTTP wire format
//
// Each record is one POST to the configured URL. The body is the record
// value byte for byte (empty for a null value). Headers:
//
//	Content-Type            the record's content-type header (name matched
//	                        case-insensitively, first one wins) when it is
//	                        printable ASCII; else a Content-Type configured in
//	                        HTTPOptions.Headers; else application/octet-stream
//	X-Fanout-Topic          topic
//	X-Fanout-Partition      partition, decimal
//	X-Fanout-Offset         offset, decimal
//	X-Fanout-Route          route name
//	X-Fanout-Attempt        1-based attempt for this route (Message.Attempt)
//	X-Fanout-Timestamp      record timestamp, RFC 3339 with nanoseconds, UTC;
//	                        absent when the record has none
//	Idempotency-Key         <topic>/<partition>/<offset>; delivery is
//	                        at-least-once, so receivers should drop repeats
//	X-Fanout-Key            the record key; absent when null or empty
//	X-Fanout-Key-Encoding   "base64" when X-Fanout-Key is standard base64,
//	                        which happens when the key is not printable ASCII
//	                        or has leading or trailing whitespace
//	X-Fanout-Header-<Name>  one per record header, repeats kept in order
//	X-Fanout-Base64-Headers comma-separated X-Fanout-Header-* names whose
//	                        values are all standard base64
//
// plus the static headers of HTTPOptions.Headers. With a signing secret,
// the request is signed as Standard Webhooks 1.0 specifies, so a receiver
// verifies it with any of that specification's libraries:
//
//	Webhook-Id              the Idempotency-Key value
//	Webhook-Timestamp       Unix seconds of this attempt
//	Webhook-Signature       v1,<standard base64 of HMAC-SHA256 over
//	                        "<webhook-id>.<webhook-timestamp>.<body>">, keyed
//	                        by the secret's decoded bytes (whsec_<base64>)
//
// The timestamp is signed, so a captured request cannot be replayed past
// the receiver's tolerance (the libraries' default is 5 minutes).
//
// Kafka header names are arbitrary strings but HTTP names are tokens. In
// <Name>, every byte that is not an RFC 9110 token character, and '%'
// itself, is percent-encoded (%XX), so percent-decoding the suffix gives the
// Kafka name back; nothing is skipped. HTTP names are case-insensitive and
// net/http canonicalises them, so the case of the Kafka name is not
// preserved, and Kafka headers whose names differ only in case arrive as one
// repeated HTTP header. A header value is sent verbatim when it is printable
// ASCII without leading or trailing whitespace; otherwise all values of that
// HTTP name are sent as standard base64 and the name is listed in
// X-Fanout-Base64-Headers.
//
// # HTTP responses
//
// 2xx acknowledges. 401, 403, 408, 425, 429 and 5xx, the per-request
// timeout and transport errors (refused, reset, DNS, TLS) are retryable
// (401 and 403 say the route's credentials are wrong, not the record: the
// route congests and alerts instead of dead-lettering everything); a Retry-After
// header on a retryable response, as delta-seconds or an HTTP-date, becomes
// fanout.RetryAfter, capped at MaxRetryAfter. Every other status is
// fanout.Permanent: other 4xx, and also 1xx leftovers and 3xx, because
// redirects are not followed (a POST turned into a GET by a 301/302 could
// be acknowledged without delivering anything); configure the final URL.
// Errors name the route, the method, the URL's scheme and host only
// (internal/redact: webhook URLs carry their credential in the path), and
// the status; never a header value, the secret or the response body. The
// response body is read up to 64 KiB and discarded, so connections are
// reused. When the Deliver ctx ends, the error wraps ctx.Err(); the route's
// own timeout does not wrap context.DeadlineExceeded.
package routes
