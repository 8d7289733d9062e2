package console

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"time"

	presence "github.com/presenced/presenced"
)

// maxDevTokenTTL bounds the lifetime of a development token the page mints.
const maxDevTokenTTL = 24 * time.Hour

// devTokenBody is the body of POST /presenced/dev/token; every member is
// optional, with the defaults of `presenced token`.
type devTokenBody struct {
	Tenant string `json:"tenant"`
	App    string `json:"app"`
	User   string `json:"user"`
	Scopes string `json:"scopes"`
	Roles  string `json:"roles"`
	TTL    string `json:"ttl"`
}

// parseDevTokenBody checks a development token request and fills in the
// defaults of `presenced token`: the development tenant and application,
// delegated scopes Presence.Read.All and Presence.ReadWrite with a user,
// the application role Presence.ReadWrite.All without, an hour.
func parseDevTokenBody(raw []byte, devTenant, devApp string) (DevTokenRequest, error) {
	var b devTokenBody
	if len(strings.TrimSpace(string(raw))) > 0 {
		dec := json.NewDecoder(strings.NewReader(string(raw)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&b); err != nil {
			return DevTokenRequest{}, presence.Errorf(presence.CodeBadRequest, "The body must be a JSON object with tenant, app, user, scopes, roles and ttl, each optional.")
		}
	}
	req := DevTokenRequest{Tenant: devTenant, AppID: devApp, TTL: time.Hour}
	for _, f := range []struct {
		name, raw string
		dst       *string
	}{{"tenant", b.Tenant, &req.Tenant}, {"app", b.App, &req.AppID}, {"user", b.User, &req.User}} {
		if strings.TrimSpace(f.raw) == "" {
			continue
		}
		id, ok := presence.CanonicalGUID(strings.TrimSpace(f.raw))
		if !ok {
			return DevTokenRequest{}, presence.Errorf(presence.CodeBadRequest, "The %s '%s' is not a GUID.", f.name, f.raw)
		}
		*f.dst = id
	}
	fields := func(s, def string) []string {
		if strings.TrimSpace(s) == "" {
			s = def
		}
		return strings.Fields(strings.ReplaceAll(s, ",", " "))
	}
	if req.User != "" {
		req.Scopes = fields(b.Scopes, "Presence.Read.All Presence.ReadWrite")
	} else {
		req.Roles = fields(b.Roles, "Presence.ReadWrite.All")
	}
	if b.TTL != "" {
		d, err := time.ParseDuration(b.TTL)
		if err != nil || d <= 0 || d > maxDevTokenTTL {
			return DevTokenRequest{}, presence.Errorf(presence.CodeBadRequest, "The ttl '%s' must be a duration such as 1h, at most 24h.", b.TTL)
		}
		req.TTL = d
	}
	return req, nil
}

// devToken serves POST /presenced/dev/token, mounted only in development
// auth mode: it mints a development token as `presenced token` does.
func (c *Console) devToken(w http.ResponseWriter, r *http.Request, _ viewer) error {
	raw, err := io.ReadAll(io.LimitReader(r.Body, 1<<16))
	if err != nil {
		return presence.Errorf(presence.CodeBadRequest, "The body could not be read.")
	}
	req, err := parseDevTokenBody(raw, c.cfg.DevTenant, c.cfg.DevApp)
	if err != nil {
		return err
	}
	tok, err := c.cfg.MintDevToken(req)
	if err != nil {
		return err
	}
	c.cfg.Logger.WarnContext(r.Context(), "console minted a development token", "tenant", req.Tenant, "app", req.AppID, "user", req.User, "remote", r.RemoteAddr)
	return writeJSON(w, map[string]any{"accessToken": tok, "tenant": req.Tenant, "user": req.User, "appId": req.AppID,
		"scopes": req.Scopes, "roles": req.Roles, "expiresIn": int(req.TTL.Seconds()), "developmentMode": true})
}
