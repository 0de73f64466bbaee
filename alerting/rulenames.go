package alerting

import (
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
)

// metricRef matches a fanout_* metric name. The leading word boundary keeps
// it from matching inside longer identifiers; alert names (FanoutX), label
// values ("fanout") and URLs (receiver-fanout/fanout) have no underscore
// after "fanout" and never match.
var metricRef = regexp.MustCompile(`\bfanout_[a-zA-Z0-9_]*[a-zA-Z0-9]`)

// histogramSuffixes are the series suffixes of a classic histogram; the
// metric itself is named without them.
var histogramSuffixes = []string{"_bucket", "_sum", "_count"}

// MetricNames returns the sorted, unique fanout_* metric names used in the
// given files (rule files, rule tests, dashboards). It scans the whole text,
// so a name in a comment or an annotation template counts too. The _bucket,
// _sum and _count series suffixes of histograms are stripped, which yields
// the name the worker registers; by Prometheus naming rules no other metric
// ends in those suffixes.
func MetricNames(files ...string) ([]string, error) {
	seen := make(map[string]struct{})
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("alerting: metric names: %w", err)
		}
		for _, m := range metricRef.FindAllString(string(b), -1) {
			for _, s := range histogramSuffixes {
				if base, ok := strings.CutSuffix(m, s); ok {
					m = base
					break
				}
			}
			seen[m] = struct{}{}
		}
	}
	names := make([]string, 0, len(seen))
	for n := range seen {
		names = append(names, n)
	}
	slices.Sort(names)
	return names, nil
}
