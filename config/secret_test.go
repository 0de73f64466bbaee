package config

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

// testSecret is a valid signing secret: whsec_ and the base64 of the 32
// bytes 0..31.
var testSecret = "whsec_" + base64.StdEncoding.EncodeToString(testKey)

var testKey = func() []byte {
	k := make([]byte, 32)
	for i := range k {
		k[i] = byte(i)
	}
	return k
}()

func TestSecretNeverPrints(t *testing.T) {
	s := Secret("hunter2")
	outs := []string{
		s.String(), s.GoString(),
		fmt.Sprint(s), fmt.Sprintf("%v %+v %#v %s %q %x %X %d %10s", s, s, s, s, s, s, s, s, s),
		fmt.Sprintf("%+v", struct{ P Secret }{s}),
		fmt.Sprintf("%#v", struct{ P Secret }{s}),
	}
	b, err := json.Marshal(struct{ P Secret }{s})
	if err != nil {
		t.Fatal(err)
	}
	outs = append(outs, string(b))
	for _, out := range outs {
		if strings.Contains(out, "hunter2") || strings.Contains(out, fmt.Sprintf("%x", "hunter2")) {
			t.Errorf("secret leaked: %s", out)
		}
	}
	if got := fmt.Sprint(s); got != "***" {
		t.Errorf("fmt.Sprint(secret) = %q, want ***", got)
	}
	if got := fmt.Sprint(Secret("")); got != "" {
		t.Errorf("fmt.Sprint(empty secret) = %q, want empty", got)
	}
	if string(s) != "hunter2" {
		t.Errorf("string(secret) = %q", string(s))
	}
}
