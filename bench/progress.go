package bench

import (
	"fmt"
	"io"
	"os"
)

// isTerminal reports whether w is a character device (an interactive
// terminal), where the progress line is redrawn in place.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// progressPrinter returns the live progress callback and a function that
// ends the line. On a terminal the line is redrawn in place; elsewhere
// (logs, CI) one line is printed per interval.
func progressPrinter(w io.Writer, label string) (func(progress), func()) {
	tty := isTerminal(w)
	printed := false
	update := func(p progress) {
		phase := "run"
		if p.Warmup {
			phase = "warmup"
		}
		line := fmt.Sprintf("[%s] %-6s %6.1fs/%.0fs  requests %d  rate %.0f/s  errors %d",
			label, phase, p.Elapsed.Seconds(), p.Total.Seconds(), p.Requests, p.Rate, p.Errors)
		if tty {
			fmt.Fprintf(w, "\r\033[K%s", line)
		} else {
			fmt.Fprintln(w, line)
		}
		printed = true
	}
	done := func() {
		if tty && printed {
			fmt.Fprintln(w)
		}
	}
	return update, done
}
