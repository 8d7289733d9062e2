package ticket

import (
	"context"
	"errors"
	"testing"
	"time"

	presence "github.com/presenced/presenced"
)

func TestIssueRedeemOnceAndExpire(t *testing.T) {
	ctx := context.Background()
	clock := presence.NewTestClock(time.Now())
	is := &Issuer{Store: NewMemory(0), Clock: clock}
	p := presence.Principal{Tenant: "t", User: "u", Delegated: true, ExpiresAt: time.Now().Add(time.Hour).Unix()}
	id, exp, err := is.Issue(ctx, p)
	if err != nil || len(id) != 43 || exp.Sub(clock.Now()) != MaxLifetime {
		t.Fatalf("issue: %q %v %v", id, exp, err)
	}
	got, err := is.Redeem(ctx, id)
	if err != nil || got.User != "u" {
		t.Fatalf("redeem: %v %v", got, err)
	}
	if _, err := is.Redeem(ctx, id); !errors.Is(err, &presence.Error{Code: presence.CodeInvalidAuthenticationToken}) {
		t.Fatalf("second redeem: %v", err)
	}
	id, _, _ = is.Issue(ctx, p)
	clock.Advance(MaxLifetime)
	if _, err := is.Redeem(ctx, id); err == nil {
		t.Fatal("an expired ticket was taken")
	}
	// A token about to expire bounds its ticket.
	p.ExpiresAt = time.Now().Add(5 * time.Second).Unix()
	_, exp, _ = is.Issue(ctx, p)
	if left := exp.Sub(clock.Now()); left > 6*time.Second {
		t.Fatalf("ticket of a token with 5 s left lives %v", left)
	}
}

func TestMemoryIsBounded(t *testing.T) {
	ctx := context.Background()
	clock := presence.NewTestClock(time.Now())
	is := &Issuer{Store: NewMemory(3), Clock: clock}
	for range 3 {
		if _, _, err := is.Issue(ctx, presence.Principal{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := is.Issue(ctx, presence.Principal{}); !errors.Is(err, &presence.Error{Code: presence.CodeTooManyRequests}) {
		t.Fatalf("a fourth ticket: %v", err)
	}
	clock.Advance(2 * MaxLifetime)
	if _, _, err := is.Issue(ctx, presence.Principal{}); err != nil {
		t.Fatalf("after the others expired: %v", err)
	}
}
