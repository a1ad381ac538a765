package fsm

import "testing"

// TestEncodeAllocations pins the allocations of the commands written per
// token issued: the output buffer only, sized so that it does not grow.
func TestEncodeAllocations(t *testing.T) {
	h := HashOf("x")
	for _, c := range []Command{
		&IssueGrant{ClientID: "client-0123456789abcdef", Tenant: "default", Username: "someone@example.com",
			Scope: "openid profile email", IssuedAt: 1 << 62, Access: TokenSpec{h, 1 << 62}, Refresh: TokenSpec{h, 1 << 62}},
		&RotateRefresh{Old: h, ClientID: "client-0123456789abcdef", Scope: "openid", Now: 1 << 62, Grace: 5e9,
			Access: TokenSpec{h, 1 << 62}, Refresh: TokenSpec{h, 1 << 62}},
		&RedeemCode{Code: h, ClientID: "client-0123456789abcdef", RedirectURI: "https://app.example.com/callback",
			Challenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM", Now: 1 << 62, Access: TokenSpec{h, 1 << 62}, Refresh: TokenSpec{h, 1 << 62}},
	} {
		if n := testing.AllocsPerRun(100, func() { _ = Encode(c) }); n != 1 {
			t.Errorf("Encode(%T): %v allocations, want 1", c, n)
		}
		if got, err := Decode(Encode(c)); err != nil || Encode(got) == nil {
			t.Errorf("Encode(%T) does not round-trip: %v", c, err)
		}
	}
}
