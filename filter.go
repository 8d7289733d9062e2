package presence

import "strings"

// MaxIDs is Graph's limit of user ids in one getPresencesByUserId, one
// $filter and one subscription.
const MaxIDs = 650

// ParseIDFilter parses the only $filter presence supports on the presence
// collection: "id in ('g1','g2',...)" or "id eq 'g1'", with single-quoted
// values (” escapes a quote, as in OData), any spacing, and case-insensitive
// keywords. It returns the raw values in order, repeats included; callers
// check them as GUIDs. As in a subscription's resource, the limit of
// MaxIDs counts distinct ids (values that are one GUID in different case or
// with braces are one id), not the values written.
func ParseIDFilter(f string) ([]string, error) {
	return parseIDFilter(f, MaxIDs)
}

// parseIDFilter is ParseIDFilter with a limit of distinct values.
func parseIDFilter(f string, limit int) ([]string, error) {
	bad := Errorf(CodeBadRequest, "Invalid $filter: only \"id in ('{id}',...)\" and \"id eq '{id}'\" are supported.")
	p := &filterLexer{s: f}
	if !p.keyword("id") {
		return nil, bad
	}
	switch {
	case p.keyword("eq"):
		v, ok := p.quoted()
		if !ok || !p.end() {
			return nil, bad
		}
		return []string{v}, nil
	case p.keyword("in"):
		if !p.punct('(') {
			return nil, bad
		}
		var vals []string
		var distinct map[string]struct{} // made only once the values pass the limit
		for {
			v, ok := p.quoted()
			if !ok {
				return nil, bad
			}
			vals = append(vals, v)
			if len(vals) > limit {
				if distinct == nil {
					distinct = make(map[string]struct{}, len(vals))
					for _, w := range vals[:len(vals)-1] {
						distinct[idKey(w)] = struct{}{}
					}
				}
				distinct[idKey(v)] = struct{}{}
				if len(distinct) > limit {
					return nil, Errorf(CodeBadRequest, "The number of ids exceeds the maximum of 650.")
				}
			}
			if p.punct(')') {
				break
			}
			if !p.punct(',') {
				return nil, bad
			}
		}
		if !p.end() {
			return nil, bad
		}
		return vals, nil
	}
	return nil, bad
}

// idKey is the value a GUID is counted by: its canonical form, so that
// the same GUID in another case or in braces counts once.
func idKey(v string) string {
	if g, ok := CanonicalGUID(v); ok {
		return g
	}
	return strings.ToLower(v)
}

type filterLexer struct {
	s   string
	pos int
}

func (l *filterLexer) skipSpace() {
	for l.pos < len(l.s) && (l.s[l.pos] == ' ' || l.s[l.pos] == '\t') {
		l.pos++
	}
}

// keyword consumes word when it stands next, followed by a non-letter.
func (l *filterLexer) keyword(word string) bool {
	l.skipSpace()
	end := l.pos + len(word)
	if end > len(l.s) || !strings.EqualFold(l.s[l.pos:end], word) {
		return false
	}
	if end < len(l.s) {
		c := l.s[end]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' {
			return false
		}
	}
	l.pos = end
	return true
}

func (l *filterLexer) punct(c byte) bool {
	l.skipSpace()
	if l.pos < len(l.s) && l.s[l.pos] == c {
		l.pos++
		return true
	}
	return false
}

// quoted consumes a single-quoted literal. A literal without a doubled
// quote, the usual id, is returned as a slice of the filter, not a copy.
func (l *filterLexer) quoted() (string, bool) {
	l.skipSpace()
	if l.pos >= len(l.s) || l.s[l.pos] != '\'' {
		return "", false
	}
	start := l.pos + 1
	var unescaped []byte // the value so far, once a doubled quote is seen
	for i := start; i < len(l.s); i++ {
		if l.s[i] != '\'' {
			continue
		}
		if i+1 < len(l.s) && l.s[i+1] == '\'' {
			unescaped = append(unescaped, l.s[start:i+1]...)
			i++
			start = i + 1
			continue
		}
		l.pos = i + 1
		if unescaped == nil {
			return l.s[start:i], true
		}
		return string(append(unescaped, l.s[start:i]...)), true
	}
	return "", false
}

func (l *filterLexer) end() bool {
	l.skipSpace()
	return l.pos == len(l.s)
}
