package presence

import (
	"fmt"
	"strings"
	"testing"
)

func TestParseSubscriptionResource(t *testing.T) {
	const a, b = "fa8bf3dc-eca7-46b7-bad1-db199b62afc3", "66825e03-7ef5-42da-9069-724602c31f6b"
	good := map[string][]string{
		"communications/presences/" + a:                                     {a},
		"/communications/presences/" + strings.ToUpper(a):                   {a},
		"communications/presences?$filter=id in ('" + a + "','" + b + "')":  {a, b},
		"/Communications/Presences?$filter=id in ('" + a + "','" + a + "')": {a},
	}
	for in, want := range good {
		got, err := ParseSubscriptionResource(in)
		if err != nil || strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("%q: %v, %v", in, got, err)
		}
	}
	for _, in := range []string{"", "me/presence", "communications/presences", "communications/presences/", "communications/presences/alice@contoso.com",
		"communications/presences?$filter=id in (" + a + ")", "communications/presences?$top=5", "users/" + a + "/presence"} {
		if got, err := ParseSubscriptionResource(in); err == nil || ErrorCode(err) != CodeInvalidRequest {
			t.Errorf("%q accepted: %v, %v", in, got, err)
		}
	}
	many := make([]string, MaxIDs+1)
	for i := range many {
		many[i] = fmt.Sprintf("'00000000-0000-4000-8000-%012d'", i)
	}
	users, err := ParseSubscriptionResource("communications/presences?$filter=id in (" + strings.Join(many, ",") + ")")
	if err != nil || len(users) != MaxIDs+1 {
		t.Fatalf("651 ids: %d, %v", len(users), err)
	}
	if CheckSubscriptionUsers(users) == nil || CheckSubscriptionUsers(users[:MaxIDs]) != nil {
		t.Error("the 650-user limit is not where it should be")
	}
}

func FuzzParseSubscriptionResource(f *testing.F) {
	for _, s := range []string{"communications/presences/fa8bf3dc-eca7-46b7-bad1-db199b62afc3",
		"/communications/presences?$filter=id in ('fa8bf3dc-eca7-46b7-bad1-db199b62afc3')", "communications/presences?$filter=", "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		users, err := ParseSubscriptionResource(s)
		if err != nil {
			if ErrorCode(err) != CodeInvalidRequest {
				t.Fatalf("error %v is not InvalidRequest", err)
			}
			return
		}
		for _, u := range users {
			if g, ok := CanonicalGUID(u); !ok || g != u {
				t.Fatalf("non-canonical user %q from %q", u, s)
			}
		}
	})
}
