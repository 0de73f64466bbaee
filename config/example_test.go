package config_test

import (
	"fmt"

	"github.com/receiver-fanout/fanout/config"
)

// Parse reports the file's own problems; the rules a route owns (its URL's
// form, headers, TLS files, signing secret) are checked by building the
// routes, which worker.FileProblems does through ParseWith, all at once.
func ExampleParse() {
	env := func(name string) (string, bool) {
		if name == "TOKEN" {
			return "t0ken", true
		}
		return "", false
	}
	_, err := config.Parse("fanout.yaml", []byte(`receivers:
  - topic: orders
    routes:
      - name: billing
        type: http
        wokers: 16
        http:
          url: billing:8080/events
          headers: {Authorization: "Bearer ${TOKEN}"}
          signing_secret: ${SECRET}
      - name: audit
        type: kafka
        retry: {max_attempts: 5}
        kafka: {topic: orders}
`), env)
	fmt.Println(err)
	// Output:
	// fanout.yaml:6: receivers[0].routes[0].wokers: unknown field (did you mean workers?)
	// fanout.yaml:10: receivers[0].routes[0].http.signing_secret: environment variable SECRET is not set
	// fanout.yaml:13: receivers[0].routes[1].retry.max_attempts: requires dead_letter_topic: records are never dropped, so without one they are retried forever (remove max_attempts or add dead_letter_topic)
	// fanout.yaml:14: receivers[0].routes[1].kafka.topic: must differ from the receiver's topic on the same cluster, or every record would loop
}

func ExampleFile_Summary() {
	f, err := config.Parse("fanout.yaml", []byte(`receivers:
  - topic: orders
    routes:
      - {name: billing, type: http, workers: 16, http: {url: "https://user:pw@billing/events?key=k"}}
      - {name: sink, type: discard}
`), nil)
	if err != nil {
		panic(err)
	}
	fmt.Print(f.Summary())
	// Output:
	// 1 receiver, 2 routes
	// receiver orders: max_inflight=10000, max_inflight_mib=64, 2 routes
	//   route billing: http workers=16 buffer=1024 ordering=key -> https://billing/…?… timeout=5s retry=unlimited (200ms..30s)
	//   route sink: discard workers=4 buffer=1024 ordering=key
}
