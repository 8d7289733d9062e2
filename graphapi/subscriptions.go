package graphapi

import (
	"encoding/json"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"

	presence "github.com/presenced/presenced"
)

// wireSubscription is a subscription as Graph renders it.
type wireSubscription struct {
	Context                   string  `json:"@odata.context,omitempty"`
	ID                        string  `json:"id"`
	Resource                  string  `json:"resource"`
	ApplicationID             string  `json:"applicationId"`
	ChangeType                string  `json:"changeType"`
	ClientState               *string `json:"clientState"`
	NotificationURL           string  `json:"notificationUrl"`
	NotificationQueryOptions  *string `json:"notificationQueryOptions"`
	LifecycleNotificationURL  *string `json:"lifecycleNotificationUrl"`
	ExpirationDateTime        string  `json:"expirationDateTime"`
	CreatorID                 string  `json:"creatorId"`
	IncludeResourceData       bool    `json:"includeResourceData"`
	LatestSupportedTLSVersion string  `json:"latestSupportedTlsVersion"`
	EncryptionCertificate     *string `json:"encryptionCertificate"`
	EncryptionCertificateID   *string `json:"encryptionCertificateId"`
	NotificationURLAppID      *string `json:"notificationUrlAppId"`
	NotificationContentType   string  `json:"notificationContentType"`
}

func orNull(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// toWireSubscription renders s; withState includes clientState, which a
// list never shows.
func toWireSubscription(s presence.Subscription, withState bool) wireSubscription {
	w := wireSubscription{
		ID: s.ID, Resource: s.Resource, ApplicationID: s.ApplicationID, ChangeType: s.ChangeType,
		NotificationURL: s.NotificationURL, LifecycleNotificationURL: orNull(s.LifecycleNotificationURL),
		ExpirationDateTime: s.ExpirationDateTime.UTC().Format(presence.GraphTimeLayout), CreatorID: s.CreatorID,
		IncludeResourceData: s.IncludeResourceData, LatestSupportedTLSVersion: s.LatestSupportedTLSVersion,
		EncryptionCertificate: orNull(s.EncryptionCertificate), EncryptionCertificateID: orNull(s.EncryptionCertificateID),
		NotificationContentType: "application/json",
	}
	if withState {
		w.ClientState = orNull(s.ClientState)
	}
	return w
}

// subscriptionRequest reads the body of a subscription create or update;
// members presence does not know are listed in Other, for the service to
// refuse in its own order.
func subscriptionRequest(r *http.Request) (presence.SubscriptionRequest, error) {
	var req presence.SubscriptionRequest
	o, err := readBody(r, "subscriptions", false)
	if err != nil {
		return req, err
	}
	strs := map[string]**string{
		"changeType": &req.ChangeType, "notificationUrl": &req.NotificationURL, "lifecycleNotificationUrl": &req.LifecycleNotificationURL,
		"resource": &req.Resource, "expirationDateTime": &req.ExpirationDateTime, "clientState": &req.ClientState,
		"encryptionCertificate": &req.EncryptionCertificate, "encryptionCertificateId": &req.EncryptionCertificateID,
		"latestSupportedTlsVersion": &req.LatestSupportedTLSVersion,
	}
	ignored := map[string]bool{"notificationQueryOptions": true, "notificationUrlAppId": true, "notificationContentType": true,
		"id": true, "applicationId": true, "creatorId": true}
	// In name order, so that of several bad members the same one is
	// reported every time.
	for _, name := range slices.Sorted(maps.Keys(o.members)) {
		switch {
		case strs[name] != nil:
			if !o.has(name) {
				continue
			}
			v, err := o.str(name)
			if err != nil {
				return req, err
			}
			*strs[name] = &v
		case name == "includeResourceData":
			if !o.has(name) {
				continue
			}
			var b bool
			if err := json.Unmarshal(o.members[name], &b); err != nil {
				return req, presence.Errorf(presence.CodeBadRequest, "The value of the parameter 'includeResourceData' is not a valid Boolean.")
			}
			req.IncludeResourceData = &b
		case ignored[name] || strings.Contains(name, "@"):
			// OData annotations: "@odata.type", "clientState@odata.type".
		default:
			req.Other = append(req.Other, name)
		}
	}
	return req, nil
}

func (s *Server) writeSubscription(w http.ResponseWriter, r *http.Request, c *call, status int, sub presence.Subscription) error {
	ws := toWireSubscription(sub, true)
	ws.Context = s.base(r, c) + "/$metadata#subscriptions/$entity"
	body, err := json.Marshal(ws)
	if err != nil {
		return err
	}
	if status == http.StatusCreated {
		w.Header().Set("Location", s.base(r, c)+"/subscriptions/"+sub.ID)
	}
	writeJSON(w, status, body)
	return nil
}

func (s *Server) createSubscription(w http.ResponseWriter, r *http.Request, c *call) error {
	req, err := subscriptionRequest(r)
	if err != nil {
		return err
	}
	sub, err := s.subs.Create(r.Context(), c.principal, req)
	if err != nil {
		return err
	}
	return s.writeSubscription(w, r, c, http.StatusCreated, sub)
}

func (s *Server) getSubscription(w http.ResponseWriter, r *http.Request, c *call) error {
	sub, err := s.subs.Get(r.Context(), c.principal, c.id)
	if err != nil {
		return err
	}
	return s.writeSubscription(w, r, c, http.StatusOK, sub)
}

// listPageSize is how many subscriptions one page of a list holds.
const listPageSize = 100

func (s *Server) listSubscriptions(w http.ResponseWriter, r *http.Request, c *call) error {
	subs, err := s.subs.List(r.Context(), c.principal)
	if err != nil {
		return err
	}
	skip := 0
	if v := r.URL.Query().Get("$skiptoken"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return presence.Errorf(presence.CodeBadRequest, "Invalid $skiptoken '%s'.", v)
		}
		skip = n
	}
	out := struct {
		Context  string             `json:"@odata.context"`
		NextLink string             `json:"@odata.nextLink,omitempty"`
		Value    []wireSubscription `json:"value"`
	}{Context: s.base(r, c) + "/$metadata#subscriptions", Value: []wireSubscription{}}
	for i := skip; i < len(subs) && i < skip+listPageSize; i++ {
		out.Value = append(out.Value, toWireSubscription(subs[i], false))
	}
	if skip+listPageSize < len(subs) {
		out.NextLink = s.base(r, c) + "/subscriptions?$skiptoken=" + strconv.Itoa(skip+listPageSize)
	}
	body, err := json.Marshal(out)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, body)
	return nil
}

func (s *Server) updateSubscription(w http.ResponseWriter, r *http.Request, c *call) error {
	req, err := subscriptionRequest(r)
	if err != nil {
		return err
	}
	sub, err := s.subs.Update(r.Context(), c.principal, c.id, req)
	if err != nil {
		return err
	}
	return s.writeSubscription(w, r, c, http.StatusOK, sub)
}

func (s *Server) deleteSubscription(w http.ResponseWriter, r *http.Request, c *call) error {
	if err := s.subs.Delete(r.Context(), c.principal, c.id); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) reauthorizeSubscription(w http.ResponseWriter, r *http.Request, c *call) error {
	if err := s.subs.Reauthorize(r.Context(), c.principal, c.id); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
