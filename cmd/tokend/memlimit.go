package main

import (
	"errors"
	"fmt"
	"runtime/debug"
	"strconv"
	"strings"
)

// memoryLimitUsage is the help of tokend serve --memory-limit.
const memoryLimitUsage = "soft limit on the Go heap and runtime memory, as GOMEMLIMIT (e.g. 512MiB, 2GiB; units B, KiB, MiB, GiB, TiB): " +
	"the garbage collector runs as often as it must to stay under it instead of letting the heap grow to twice the live state (GOGC=100); " +
	"set it to about 90% of the memory the node may use, above the state's size (docs/OPERATIONS.md, Sizing) (default: unset, GOMEMLIMIT if set)"

// memoryLimitFlag is --memory-limit. Setting it applies the limit at once:
// the runtime's limit is process-wide, and the flag exists to set it
// before the state machine starts to fill.
type memoryLimitFlag struct {
	limit int64
	apply func(int64) int64 // debug.SetMemoryLimit; a test passes its own
}

func newMemoryLimitFlag() *memoryLimitFlag {
	return &memoryLimitFlag{apply: debug.SetMemoryLimit}
}

func (m *memoryLimitFlag) String() string {
	if m == nil || m.limit == 0 {
		return ""
	}
	return strconv.FormatInt(m.limit, 10) + "B"
}

func (m *memoryLimitFlag) Set(s string) error {
	n, err := parseMemorySize(s)
	if err != nil {
		return err
	}
	m.limit = n
	m.apply(n)
	return nil
}

// minMemoryLimit is the smallest limit accepted: below it the collector
// would run without pause for a node holding anything at all.
const minMemoryLimit = 32 << 20

// parseMemorySize reads a size the way GOMEMLIMIT is written: a whole
// number of bytes with an optional B, KiB, MiB, GiB or TiB suffix.
func parseMemorySize(s string) (int64, error) {
	units := []struct {
		suffix string
		shift  uint
	}{{"TiB", 40}, {"GiB", 30}, {"MiB", 20}, {"KiB", 10}, {"B", 0}}
	num, shift := s, uint(0)
	for _, u := range units {
		if strings.HasSuffix(s, u.suffix) {
			num, shift = strings.TrimSuffix(s, u.suffix), u.shift
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	switch {
	case err != nil:
		return 0, fmt.Errorf("%q is not a size like 512MiB or 2GiB: %w", s, err)
	case n <= 0 || n > (1<<62)>>shift:
		return 0, fmt.Errorf("%q: out of range", s)
	case n<<shift < minMemoryLimit:
		return 0, errors.New("below 32MiB: too small for a node")
	}
	return n << shift, nil
}
