package emulator

import (
	"net/http"
	"strings"
)

// The fake provider's protected API: what an agent calls with a token it got from the vault,
// proving the token is real. GET /provider/<name>/userinfo with "Authorization: Bearer
// <access token>" answers the provider, the scopes and the user the token was issued for,
// for tokens in the vault only; anything else is 401 invalid_token.

// OpProviderAPI is the protected API's operation name in Calls (it takes no faults).
const OpProviderAPI = "ProviderUserInfo"

// ProviderAPIPath prefixes the protected API: ProviderAPIPath + <provider> + "/userinfo".
const ProviderAPIPath = "/provider/"

func (s *Server) serveProviderAPI(w http.ResponseWriter, r *http.Request) {
	call := Call{Op: OpProviderAPI}
	defer func() { s.record(call) }()
	name, rest, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, ProviderAPIPath), "/")
	if r.Method != http.MethodGet || rest != "userinfo" {
		http.NotFound(w, r)
		call.HTTPStatus = http.StatusNotFound
		return
	}
	call.Provider = name
	w.Header().Set("Cache-Control", "no-store")
	scheme, tok, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	tok = strings.TrimSpace(tok)
	var parts []string
	if strings.EqualFold(scheme, "Bearer") && tok != "" {
		s.mu.Lock()
		for key, v := range s.vault {
			if constEq(v, tok) {
				parts = strings.Split(key, "\x00\x00") // workload, vault id, provider, scopes
			}
		}
		s.mu.Unlock()
	}
	if len(parts) != 4 || parts[2] != name {
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "invalid_token"})
		call.HTTPStatus, call.ErrorType, call.Outcome = http.StatusUnauthorized, "invalid_token", "error:invalid_token"
		return
	}
	out := map[string]any{"provider": name, "scopes": strings.Fields(parts[3])}
	if kind, user, ok := strings.Cut(parts[1], "\x00"); ok && kind == "uid" {
		out["user"] = user
	} else if ok && kind == "jwt" {
		out["user"] = strings.ReplaceAll(user, "\x00", " ")
	}
	writeJSON(w, http.StatusOK, out)
	call.HTTPStatus, call.Outcome = http.StatusOK, "served"
}
