package redact

import (
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// webhooks are real-world shapes of webhook URLs whose credential is in
// the path, the query or the user info, with the secret part of each.
var webhooks = []struct {
	name, url, secret, shown string
}{
	{"slack", "https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX", "XXXXXXXXXXXXXXXXXXXXXXXX", "https://hooks.slack.com/…"},
	{"discord", "https://discord.com/api/webhooks/123456789012345678/AbCdEfGhIjKlMnOpQrStUvWxYz-0123456789", "AbCdEfGhIjKlMnOpQrStUvWxYz-0123456789", "https://discord.com/…"},
	{"teams", "https://contoso.webhook.office.com/webhookb2/1f0e7f0c-0000-4000-8000-000000000000@72f988bf-0000-4000-8000-000000000000/IncomingWebhook/5c9d0a1b2c3d4e5f/0b1c2d3e-0000-4000-8000-000000000000", "5c9d0a1b2c3d4e5f", "https://contoso.webhook.office.com/…"},
	{"teams workflow", "https://prod-00.westus.logic.azure.com:443/workflows/abc/triggers/manual/paths/invoke?api-version=2016-06-01&sig=S3cr3tS1gnature", "S3cr3tS1gnature", "https://prod-00.westus.logic.azure.com:443/…?…"},
	{"zapier", "https://hooks.zapier.com/hooks/catch/1234567/abcdefg/", "abcdefg", "https://hooks.zapier.com/…"},
	{"query token", "https://api.example.com/?token=hunter2hunter2", "hunter2hunter2", "https://api.example.com/?…"},
	{"user info", "https://svc:p4ssw0rd@billing.example.com:8443/", "p4ssw0rd", "https://billing.example.com:8443/"},
	{"escaped path", "https://h.example/a%2Fb/s%20ecret", "s%20ecret", "https://h.example/…"},
}

func TestURLShowsOnlySchemeAndHost(t *testing.T) {
	for _, w := range webhooks {
		t.Run(w.name, func(t *testing.T) {
			got := URL(w.url)
			if got != w.shown {
				t.Errorf("URL(%q) = %q, want %q", w.url, got, w.shown)
			}
			if strings.Contains(got, w.secret) {
				t.Errorf("URL(%q) = %q shows the secret", w.url, got)
			}
		})
	}
	for in, want := range map[string]string{
		"http://h":                   "http://h",
		"http://h/":                  "http://h/",
		"http://h/events":            "http://h/…",
		"http://h/?":                 "http://h/?…",
		"https://u:p@h:8443/x?k=v#f": "https://h:8443/…?…",
		"http://[::1]:8080/x":        "http://[::1]:8080/…",
		"mailto:someone@example.com": "mailto:…",
		"billing:8080/events":        "billing:…",
		"/relative/secret":           "…",
		"http://h/%zz":               "<invalid URL>",
		"":                           "…",
	} {
		if got := URL(in); got != want {
			t.Errorf("URL(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestReplacerRemovesTheHiddenParts(t *testing.T) {
	for _, w := range webhooks {
		t.Run(w.name, func(t *testing.T) {
			r := Replacer(w.url)
			u := w.url
			_, rest, _ := strings.Cut(u, "://")
			_, path, _ := strings.Cut(rest, "/")
			texts := []string{
				"Post " + u + ": EOF",
				// A server echoing the request line back.
				`malformed HTTP response "POST /` + path + ` HTTP/1.1"`,
			}
			for _, text := range texts {
				got := r.Replace(text)
				if strings.Contains(got, w.secret) {
					t.Errorf("Replace(%q) = %q keeps the secret", text, got)
				}
			}
			if got := r.Replace("Post " + u + ": EOF"); got != "Post "+w.shown+": EOF" {
				t.Errorf("the whole URL became %q, want it shown as %q", got, w.shown)
			}
		})
	}
	// Short parts are left alone so that ordinary words survive.
	r := Replacer("https://u:pw@h/x?a")
	if got := r.Replace("dial tcp: lookup h: no such host; user u"); got != "dial tcp: lookup h: no such host; user u" {
		t.Errorf("Replace mangled an unrelated text: %q", got)
	}
	if got := Replacer("http://h/%zz").Replace("x http://h/%zz y"); got != "x <invalid URL> y" {
		t.Errorf("an invalid URL is replaced by %q", got)
	}
}
