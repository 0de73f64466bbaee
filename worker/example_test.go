package worker_test

import (
	"fmt"

	"github.com/receiver-fanout/fanout/config"
	"github.com/receiver-fanout/fanout/worker"
)

// The file's own problems and those found by building its routes come
// together, at their lines, as `fanout validate` and `fanout run` print
// them.
func ExampleFileProblems() {
	_, err := config.ParseWith("fanout.yaml", []byte(`receivers:
  - topic: orders
    routes:
      - name: billing
        type: http
        wokers: 16
        http:
          url: billing:8080/events
          headers: {Upgrade: h2c}
      - name: audit
        type: kafka
        retry: {max_attempts: 5}
        kafka: {topic: orders-audit}
`), nil, worker.FileProblems)
	fmt.Println(err)
	// Output:
	// fanout.yaml:6: receivers[0].routes[0].wokers: unknown field (did you mean workers?)
	// fanout.yaml:8: receivers[0].routes[0].http.url: must be an absolute http or https URL with a host
	// fanout.yaml:9: receivers[0].routes[0].http.headers.Upgrade: is set by the http route itself and cannot be configured
	// fanout.yaml:12: receivers[0].routes[1].retry.max_attempts: requires dead_letter_topic: records are never dropped, so without one they are retried forever (remove max_attempts or add dead_letter_topic)
}
