package bench

import (
	"math"
	"math/rand/v2"
	"testing"
)

func TestParseMix(t *testing.T) {
	m, err := ParseMix("validate=95, issue-cc=4,revoke=1")
	if err != nil {
		t.Fatal(err)
	}
	want := []MixEntry{{opIssue, 4}, {opRevoke, 1}, {opValidate, 95}}
	if len(m) != len(want) {
		t.Fatalf("got %v", m)
	}
	for i := range want {
		if m[i] != want[i] {
			t.Fatalf("got %v want %v", m, want)
		}
	}
	for _, bad := range []string{"", "validate", "validate=-1", "validate=x", "validate=1,validate=2", "frob=1", "validate=0,issue=0", "validate=NaN"} {
		if _, err := ParseMix(bad); err == nil {
			t.Errorf("ParseMix(%q) accepted", bad)
		}
	}
}

func TestMixPickerDistribution(t *testing.T) {
	m, _ := ParseMix(DefaultConfig().Mix)
	p := newMixPicker(m)
	r := rand.New(rand.NewPCG(1, 2))
	const n = 400_000
	counts := map[string]int{}
	for i := 0; i < n; i++ {
		counts[p.pick(r)]++
	}
	for op, want := range map[string]float64{opValidate: .95, opIssue: .04, opRevoke: .01} {
		got := float64(counts[op]) / n
		// 5 standard deviations of a binomial proportion.
		tol := 5 * math.Sqrt(want*(1-want)/n)
		if math.Abs(got-want) > tol {
			t.Errorf("%s: share %.4f, want %.4f ± %.4f", op, got, want, tol)
		}
		if s := p.share(op); math.Abs(s-want) > 1e-12 {
			t.Errorf("share(%s) = %v", op, s)
		}
	}
	if counts[opIntrospect] != 0 {
		t.Errorf("introspect picked without weight")
	}
}

func TestMixPickerSkipsZeroWeights(t *testing.T) {
	m, _ := ParseMix("validate=0,revoke=3")
	p := newMixPicker(m)
	r := rand.New(rand.NewPCG(3, 4))
	for i := 0; i < 1000; i++ {
		if op := p.pick(r); op != opRevoke {
			t.Fatalf("picked %s", op)
		}
	}
}
