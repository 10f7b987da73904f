// Package agent is a small Go agent for Amazon Bedrock AgentCore Runtime that uses the token
// consentflow obtained: Handler serves the Runtime service contract (POST /invocations,
// GET /ping). On each invocation it gets the invoking user's OAuth2 token for the provider
// from AgentCore Identity's vault (agentauth, with agentauth.Middleware for the invocation's
// user and agentauth.WithWorkloadName naming consentflow's workload identity, under which
// the token is kept), calls the provider's API with it, and answers with what the API said. When the user has not consented yet it answers CONSENT_REQUIRED with the
// authorization URL: start consentflow's AuthorizeUser workflow with continueWith naming this
// agent (StartExecution with the user, provider, scopes and continueWith), and consentflow
// invokes it again once the user has consented. cmd/agent runs it.
package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/consentflow/consentflow/agentauth"
)

// Settings configure the agent.
type Settings struct {
	// Provider and Scopes name the user's token in AgentCore's vault.
	Provider string
	Scopes   []string
	// APIURL is the provider's protected API the agent calls with the user's token
	// (locally the emulator's GET /provider/<name>/userinfo).
	APIURL string
}

// Tokens is the slice of *agentauth.Client the agent uses.
type Tokens interface {
	AccessToken(ctx context.Context, req agentauth.TokenRequest) (string, error)
}

// Answer is what the agent returns for an invocation.
type Answer struct {
	// Status is "DONE" (the provider answered), or "CONSENT_REQUIRED" (no token for this
	// user yet: AuthorizationURL is where the user consents; start consentflow's workflow
	// to have it shown and resumed).
	Status           string          `json:"status"`
	Prompt           string          `json:"prompt,omitempty"`
	Provider         json.RawMessage `json:"provider,omitempty"` // the provider API's answer
	AuthorizationURL string          `json:"authorizationUrl,omitempty"`
}

// Handler serves the AgentCore Runtime service contract: POST /invocations and GET /ping.
// Wrap it in agentauth.Middleware (main does) so that the invocation's user (its runtimeUserId)
// is the user the token is fetched for.
func Handler(tokens Tokens, s Settings, log *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ping", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"status": "Healthy", "time_of_last_update": time.Now().Unix()})
	})
	mux.HandleFunc("POST /invocations", func(w http.ResponseWriter, r *http.Request) {
		var in struct {
			Prompt string `json:"prompt"`
		}
		_ = json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&in) // any JSON; the prompt if there is one
		if inv, ok := agentauth.FromContext(r.Context()); !ok || inv.WorkloadToken == "" {
			// AgentCore Runtime sends each invocation with a WorkloadAccessToken.
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "not an AgentCore Runtime invocation (no WorkloadAccessToken)"})
			return
		}
		// The zero User: the invocation's user. NoWait: the
		// agent does not wait for a consent here; consentflow's workflow does.
		tok, err := tokens.AccessToken(r.Context(), agentauth.TokenRequest{Provider: s.Provider, Scopes: s.Scopes, NoWait: true})
		var consent *agentauth.ConsentRequiredError
		switch {
		case errors.As(err, &consent):
			log.InfoContext(r.Context(), "consent required")
			writeJSON(w, http.StatusOK, Answer{Status: "CONSENT_REQUIRED", Prompt: in.Prompt, AuthorizationURL: consent.AuthURL.URL})
			return
		case err != nil:
			log.WarnContext(r.Context(), "getting the token failed", "error", err.Error())
			writeJSON(w, http.StatusBadGateway, map[string]string{"error": "getting the user's token failed"})
			return
		}
		body, err := callAPI(r.Context(), s.APIURL, tok)
		if err != nil {
			log.WarnContext(r.Context(), "the provider API failed", "error", err.Error())
			writeJSON(w, http.StatusBadGateway, map[string]string{"error": "the provider API failed"})
			return
		}
		log.InfoContext(r.Context(), "answered with the provider's data")
		writeJSON(w, http.StatusOK, Answer{Status: "DONE", Prompt: in.Prompt, Provider: body})
	})
	return mux
}

// callAPI calls the provider's API with the user's token (never logged).
func callAPI(ctx context.Context, url, token string) (json.RawMessage, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(io.LimitReader(res.Body, 64<<10))
	if err != nil {
		return nil, err
	}
	if res.StatusCode != http.StatusOK || !json.Valid(b) {
		return nil, fmt.Errorf("provider API answered %d", res.StatusCode)
	}
	return b, nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
