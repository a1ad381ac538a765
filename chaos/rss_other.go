//go:build !linux

package chaos

import "errors"

// procRSS is Linux only; elsewhere the soak judges the whole RSS.
func procRSS(int) (anon, file float64, err error) {
	return 0, 0, errors.New("anonymous RSS is read from /proc, on Linux only")
}
