package httpapi

import (
	"net/url"
	"reflect"
	"strings"
	"testing"
)

// parseQuery must read every body exactly as url.ParseQuery does: the
// same values, and an error for the same bodies.
func checkParseQuery(t *testing.T, s string) {
	t.Helper()
	got, gotErr := parseQuery(s)
	want, wantErr := url.ParseQuery(s)
	if (gotErr != nil) != (wantErr != nil) {
		t.Fatalf("parseQuery(%q): error %v, url.ParseQuery: %v", s, gotErr, wantErr)
	}
	if gotErr == nil && !reflect.DeepEqual(got, want) && !(len(got) == 0 && len(want) == 0) {
		t.Fatalf("parseQuery(%q) = %v, url.ParseQuery = %v", s, got, want)
	}
}

func TestParseQueryMatchesURL(t *testing.T) {
	for _, s := range []string{
		"", "&", "&&a=1&&", "a", "a=", "=b", "a=1&b=2", "a=1&a=2&a=3", "a=1&b=2&a=3",
		"grant_type=client_credentials&scope=read", "a=%41%2b+b", "a=%zz", "%zz=1", "a=1;b=2", ";",
		"a=b=c", "a+b=c+d", "x=" + strings.Repeat("&", 40), strings.Repeat("a=1&", 20), "é=ü&%C3%A9=1",
	} {
		checkParseQuery(t, s)
	}
}

func FuzzParseQuery(f *testing.F) {
	for _, s := range []string{"a=1&b=2", "a=1&a=2", "a=%zz", "a;b", "token=tkda-x%2By&&"} {
		f.Add(s)
	}
	f.Fuzz(checkParseQuery)
}
