// Package auth turns a bearer token into a presence.Principal.
//
// A Verifier checks a JWT access token the way Microsoft Graph does: an RS256
// or ES256 signature by a key of a JSON Web Key Set (fetched from a URL and
// refetched when a token names an unknown key, or read from a file), the
// lifetime against the real clock with some skew, the issuer and the
// audience. It maps the Entra ID claims (tid, oid, azp or appid, scp, roles,
// acct) to a Principal, and it caches the Principal of every verified token
// until the token expires, so a token's signature is checked once however
// often it is presented.
//
// Every rejection is a *TokenError, which unwraps to a *presence.Error with
// code presence.CodeInvalidAuthenticationToken and the message Graph would
// give.
//
// A DevIssuer is for development and tests: it mints ES256 tokens with a key
// of its own and hands out a Verifier that accepts them.
package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/time/rate"

	presence "github.com/presenced/presenced"
)

// The audiences of a Microsoft Graph token. Graph accepts either; a Config
// for development usually lists both.
const (
	// DefaultAudience is Microsoft Graph's resource URI.
	DefaultAudience = "https://graph.microsoft.com"
	// GraphAppID is Microsoft Graph's application id, which some tokens
	// carry as their audience instead of DefaultAudience.
	GraphAppID = "00000003-0000-0000-c000-000000000000"
)

// DefaultSkew is the clock skew a Verifier allows when Config.Skew is zero.
const DefaultSkew = 2 * time.Minute

// TenantIDPlaceholder, inside an entry of Config.Issuers, stands for the
// token's own tid. Entra ID's multi-tenant issuer is
// "https://login.microsoftonline.com/{tenantid}/v2.0".
const TenantIDPlaceholder = "{tenantid}"

// Limits of the JWKS URL client.
const (
	// jwksRefreshInterval is how often the key set is refetched anyway.
	jwksRefreshInterval = time.Hour
	// jwksUnknownKIDEvery is the least time between two refetches caused
	// by tokens naming a key the set does not hold.
	jwksUnknownKIDEvery = time.Minute
	// jwksTimeout bounds one fetch of the key set, and how long a request
	// waits for the rate limit of unknown-kid refetches (it does not wait at
	// all when the next refetch is further away than this).
	jwksTimeout = 10 * time.Second
	// maxTokenLen is the length beyond which a token is refused unparsed.
	maxTokenLen = 64 << 10
)

// Config says where a Verifier finds its keys and what it requires of a
// token.
type Config struct {
	// JWKSURL is the address of a JSON Web Key Set, such as
	// https://login.microsoftonline.com/common/discovery/v2.0/keys. It is
	// fetched at start, every hour, and when a token names a key it does not
	// hold (at most once a minute).
	JWKSURL string
	// JWKSFile is a file holding a JSON Web Key Set, read once. With
	// JWKSURL as well, keys from both are accepted.
	JWKSFile string
	// Issuers, when not empty, are the accepted values of iss. An entry may
	// contain TenantIDPlaceholder once.
	Issuers []string
	// Audiences, when not empty, are the accepted values of aud: a token is
	// accepted when one of its audiences is one of them.
	Audiences []string
	// Skew is the leeway for exp and nbf; zero means DefaultSkew.
	Skew time.Duration
	// HTTPClient fetches JWKSURL; nil means http.DefaultClient.
	HTTPClient *http.Client
	// CacheSize is the number of verified tokens kept; zero means
	// DefaultCacheSize.
	CacheSize int
	// Logger receives a line at info for every refused token (its reason,
	// kid and iss, never the token) and the key set's fetches; nil logs
	// nothing. NewVerifier's logger argument, when not nil, wins.
	Logger *slog.Logger
}

// Verifier checks bearer tokens and caches the Principals of the valid
// ones. It is safe for concurrent use. Close releases it.
type Verifier struct {
	keys      func(ctx context.Context) jwt.Keyfunc
	parser    *jwt.Parser
	issuers   []string
	audiences []string
	skew      time.Duration
	now       func() time.Time
	cache     *cache
	cancel    context.CancelFunc
	// ready is nil when keys are always there (a file, a dev key).
	ready  func() error
	logger *slog.Logger
	// devKey names the development key (file and kid), for the log of
	// refusals; empty outside development auth mode.
	devKey string
	// logs limits the log lines of refused tokens; suppressed counts
	// those left out since the last line.
	logs       *rate.Limiter
	suppressed atomic.Int64
}

// NewVerifier returns a Verifier for cfg, which must name a JWKSURL or a
// JWKSFile (see DevIssuer for development without either). With a JWKSURL
// it fetches the key set before returning; a failed fetch is logged and
// retried when a token arrives, so the server can start while the issuer is
// unreachable. The Verifier refreshes the set in the background until ctx is
// done or Close is called.
func NewVerifier(ctx context.Context, cfg Config, logger *slog.Logger) (*Verifier, error) {
	if logger == nil {
		logger = cfg.Logger
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	cfg.Logger = logger
	if cfg.JWKSURL == "" && cfg.JWKSFile == "" {
		return nil, errors.New("auth: no JWKS URL or JWKS file configured")
	}
	var given jwkset.Storage
	if cfg.JWKSFile != "" {
		s, n, err := readJWKSFile(cfg.JWKSFile)
		if err != nil {
			return nil, err
		}
		logger.Info("auth: loaded JWKS file", "file", cfg.JWKSFile, "keys", n)
		given = s
	}
	ctx, cancel := context.WithCancel(ctx)
	var givenKF jwt.Keyfunc
	givenKeys := 0
	if given != nil {
		k, err := keyfunc.New(keyfunc.Options{Ctx: ctx, Storage: given, UseWhitelist: []jwkset.USE{jwkset.UseSig, ""}})
		if err != nil {
			cancel()
			return nil, fmt.Errorf("auth: %w", err)
		}
		givenKF = k.KeyfuncCtx(ctx)
		all, _ := given.KeyReadAll(ctx)
		givenKeys = len(all)
	}
	if cfg.JWKSURL == "" {
		return newVerifier(cfg, func(context.Context) jwt.Keyfunc { return givenKF }, cancel), nil
	}
	u := &urlKeys{
		url: cfg.JWKSURL, given: givenKF, givenKeys: givenKeys, logger: logger,
		onDemand: rate.NewLimiter(rate.Every(jwksUnknownKIDEvery), 1),
		override: keyfunc.Override{
			Client:           cfg.HTTPClient,
			Given:            given,
			HTTPTimeout:      jwksTimeout,
			RateLimitWaitMax: jwksTimeout,
			RefreshErrorHandlerFunc: func(u string) func(context.Context, error) {
				return func(ctx context.Context, err error) {
					logger.ErrorContext(ctx, "auth: fetching the JWKS failed", "url", u, "err", err)
				}
			},
			RefreshInterval:   jwksRefreshInterval,
			RefreshUnknownKID: rate.NewLimiter(rate.Every(jwksUnknownKIDEvery), 1),
		},
	}
	if _, err := url.ParseRequestURI(cfg.JWKSURL); err != nil {
		cancel()
		return nil, fmt.Errorf("auth: JWKS URL %q: %w", cfg.JWKSURL, err)
	}
	if err := u.load(ctx); err != nil {
		logger.Warn("auth: the JWKS could not be loaded; until it is, every token it signs is refused and /readyz answers 503; retrying in the background",
			"url", cfg.JWKSURL, "err", err)
		go u.retry(ctx)
	}
	v := newVerifier(cfg, u.keyfunc, func() { cancel(); u.close() })
	v.ready = u.ready
	return v, nil
}

// newVerifier returns a Verifier that finds keys with keys.
func newVerifier(cfg Config, keys func(context.Context) jwt.Keyfunc, cancel context.CancelFunc) *Verifier {
	skew := cfg.Skew
	if skew == 0 {
		skew = DefaultSkew
	}
	v := &Verifier{
		keys:      keys,
		issuers:   append([]string(nil), cfg.Issuers...),
		audiences: append([]string(nil), cfg.Audiences...),
		skew:      skew,
		now:       time.Now,
		cache:     newCache(cfg.CacheSize),
		cancel:    cancel,
		logger:    slog.New(slog.DiscardHandler),
		logs:      rate.NewLimiter(rate.Every(refusalLogEvery), refusalLogBurst),
	}
	if cfg.Logger != nil {
		v.logger = cfg.Logger
	}
	v.parser = jwt.NewParser(
		jwt.WithValidMethods([]string{jwt.SigningMethodRS256.Alg(), jwt.SigningMethodES256.Alg()}),
		jwt.WithLeeway(skew),
		jwt.WithExpirationRequired(),
		jwt.WithTimeFunc(func() time.Time { return v.now() }),
	)
	return v
}

// readJWKSFile reads a JSON Web Key Set from file, skipping keys of types
// jwkset does not support, and returns it with the number of keys kept.
func readJWKSFile(file string) (jwkset.Storage, int, error) {
	raw, err := os.ReadFile(file)
	if err != nil {
		return nil, 0, fmt.Errorf("auth: reading JWKS file: %w", err)
	}
	var set jwkset.JWKSMarshal
	if err := json.Unmarshal(raw, &set); err != nil {
		return nil, 0, fmt.Errorf("auth: JWKS file %s: %w", file, err)
	}
	storage := jwkset.NewMemoryStorage()
	n := 0
	for i, m := range set.Keys {
		jwk, err := jwkset.NewJWKFromMarshal(m, jwkset.JWKMarshalOptions{}, jwkset.JWKValidateOptions{})
		if errors.Is(err, jwkset.ErrUnsupportedKey) {
			continue
		}
		if err != nil {
			return nil, 0, fmt.Errorf("auth: JWKS file %s: key %d: %w", file, i, err)
		}
		if err := storage.KeyWrite(context.Background(), jwk); err != nil {
			return nil, 0, fmt.Errorf("auth: JWKS file %s: key %d: %w", file, i, err)
		}
		n++
	}
	if n == 0 {
		return nil, 0, fmt.Errorf("auth: JWKS file %s holds no usable key", file)
	}
	return storage, n, nil
}

// Ready reports nil when the Verifier has keys to verify tokens with, and
// otherwise why not: a JWKS URL that could not be fetched yet (it is
// retried in the background). A readiness probe should fail meanwhile.
func (v *Verifier) Ready() error {
	if v.ready == nil {
		return nil
	}
	return v.ready()
}

// Close stops the background refresh of the key set. It is safe to call
// more than once, and Verify keeps working with the keys already fetched.
func (v *Verifier) Close() {
	if v.cancel != nil {
		v.cancel()
	}
}

// Verify checks the bearer token raw (without the "Bearer " prefix) and
// returns its Principal. A token already verified is answered from the cache
// until it expires. Callers must not modify the Principal's Scopes and Roles,
// which the cache shares.
//
// Every error is a *TokenError: errors.As(err, new(*presence.Error)) gives
// the code presence.CodeInvalidAuthenticationToken and a Graph-like message.
func (v *Verifier) Verify(ctx context.Context, raw string) (presence.Principal, error) {
	p, err := v.verifyKeeping(ctx, raw, true)
	if err != nil && raw != "" {
		v.logRefusal(ctx, raw, err)
	}
	return p, err
}

// VerifyUncached is Verify for a token that authenticates one long-lived
// connection: it is answered from the cache when the cache holds it, but a
// token it does not hold is verified without being added. Thousands of
// connections, each with a token of its own, would otherwise keep a copy of
// every token (a kilobyte or so each) in the cache beside their own
// Principals, for requests that do not come.
func (v *Verifier) VerifyUncached(ctx context.Context, raw string) (presence.Principal, error) {
	p, err := v.verifyKeeping(ctx, raw, false)
	if err != nil && raw != "" {
		v.logRefusal(ctx, raw, err)
	}
	return p, err
}

// verifyKeeping is Verify (keep) or VerifyUncached without the log of
// refusals: a token the cache holds is answered from it; another is
// verified, and added to the cache when keep is set.
func (v *Verifier) verifyKeeping(ctx context.Context, raw string, keep bool) (presence.Principal, error) {
	if raw == "" {
		return presence.Principal{}, tokenError(messageEmpty, nil)
	}
	if p, ok := v.cache.get(raw, v.now()); ok {
		return p, nil
	}
	if len(raw) > maxTokenLen {
		return presence.Principal{}, tokenError(messageInvalid, errTooLong)
	}
	if !compact(raw) {
		return presence.Principal{}, tokenError(messageMalformed, errNotCompact)
	}
	if !keep {
		p, _, err := v.verify(ctx, raw)
		return p, err
	}
	return v.cache.do(ctx, raw, v.now, func() (presence.Principal, time.Time, error) {
		return v.verify(ctx, raw)
	})
}

// verify checks raw without the cache. It returns the Principal and the
// instant after which the token is no longer valid.
func (v *Verifier) verify(ctx context.Context, raw string) (presence.Principal, time.Time, error) {
	var c claims
	if _, err := v.parser.ParseWithClaims(raw, &c, refuseCrit(v.keys(ctx))); err != nil {
		return presence.Principal{}, time.Time{}, classify(err)
	}
	if len(v.audiences) > 0 && !anyIn(c.Audience, v.audiences) {
		return presence.Principal{}, time.Time{}, tokenError(messageAudience, fmt.Errorf("%w: %q", errAudience, []string(c.Audience)))
	}
	if len(v.issuers) > 0 && !v.issuerOK(c.Issuer, c.TenantID) {
		return presence.Principal{}, time.Time{}, tokenError(messageIssuer, fmt.Errorf("%w: %q", errIssuer, c.Issuer))
	}
	p, err := c.principal()
	if err != nil {
		return presence.Principal{}, time.Time{}, tokenError(messageInvalid, err)
	}
	// WithExpirationRequired made the parser refuse a token without exp.
	return p, c.ExpiresAt.Add(v.skew), nil
}

// issuerOK reports whether iss is one of the accepted issuers, where
// TenantIDPlaceholder stands for the token's tid (in either case, as the GUID
// is compared case-insensitively).
func (v *Verifier) issuerOK(iss, tid string) bool {
	for _, want := range v.issuers {
		prefix, suffix, template := strings.Cut(want, TenantIDPlaceholder)
		if !template {
			if iss == want {
				return true
			}
			continue
		}
		if tid != "" && len(iss) == len(prefix)+len(tid)+len(suffix) &&
			strings.HasPrefix(iss, prefix) && strings.HasSuffix(iss, suffix) &&
			strings.EqualFold(iss[len(prefix):len(prefix)+len(tid)], tid) {
			return true
		}
	}
	return false
}

// anyIn reports whether one of have is in want.
func anyIn(have, want []string) bool {
	for _, h := range have {
		for _, w := range want {
			if h == w {
				return true
			}
		}
	}
	return false
}
