// Command agentcore-local runs the AgentCore Identity emulator (internal/local/emulator) as a
// local server: the AgentCore Identity data-plane API (restJson1, SigV4-signed requests
// from any AWS SDK with BaseEndpoint or AWS_ENDPOINT_URL_BEDROCK_AGENTCORE pointing at it)
// the fake OAuth provider's consent page, and a test OpenID Connect provider (the IdP:
// discovery at /.well-known/openid-configuration, sign-in page with test users), on one
// origin.
//
//	go run ./cmd/agentcore-local --workload my-agent \
//	    --return-url http://127.0.0.1:8080/oauth2/callback \
//	    --provider github --provider weather=apikey
//
// The first line on stdout is "agentcore-local listening on http://HOST:PORT", the second
// "agentcore-local issuer ISSUER" (the IdP's issuer: --public-url, else the listen
// address, 0.0.0.0 written as 127.0.0.1). Logs go to stderr (log/slog) and never contain
// tokens, JWTs, codes, user ids, state or keys. SIGINT or SIGTERM shuts the server down
// gracefully and the command exits 0.
//
// Flags:
//
//	--addr HOST:PORT      listen address (default 127.0.0.1:8787; port 0 picks a free
//	                      one). An empty host is refused: name 0.0.0.0 explicitly to
//	                      listen on all interfaces.
//	--workload NAME       workload identity (repeatable)
//	--return-url URL      allowed resourceOauth2ReturnUrl of every --workload (repeatable)
//	--provider NAME       OAuth2 credential provider; NAME=apikey for an API-key provider,
//	                      NAME=oauth2 explicit (repeatable)
//	--auto-approve        consent at once when the authorization URL is opened
//	--double-encode-session-id
//	                      percent-encode session_id twice in the redirect (AWS's
//	                      encoding is unconfirmed; callbacks should accept both)
//	--public-url URL      origin put in authorization URLs (default: the request's Host)
//	                      and the IdP's issuer (default: the listen address)
//	--fault OP=N:KIND     the next N calls of OP fail: KIND throttle, internal or
//	                      delay=DURATION (repeatable)
//	--idp-user SUBJECT[,EMAIL[,NAME]]
//	                      a test user of the IdP's sign-in page (repeatable; an email
//	                      given is verified); any user replaces the defaults alice and bob
//	--idp-client ID[:SECRET]=REDIRECT_URI
//	                      a client registered at the IdP (repeatable; the same ID again
//	                      adds a redirect URI; no SECRET: a public client)
//	--config FILE         JSON: {"workloads":[{"name":...,"allowedReturnUrls":[...]}],
//	                      "providers":[{"name":...,"kind":"oauth2"|"apikey","apiKey":...}],
//	                      "autoApprove":bool,"publicUrl":...,"doubleEncodeSessionId":bool,
//	                      "idp":{"users":[{"subject":...,"email":...,"emailVerified":bool,
//	                      "name":...,"preferredUsername":...}],"clients":[{"clientId":...,
//	                      "clientSecret":...,"redirectUris":[...]}],"idTokenTtl":"1h",
//	                      "accessTokenTtl":3600,"audience":...}} (TTLs: Go durations or
//	                      seconds); flags add to it
//	--log-level LEVEL     debug, info, warn or error (default info)
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/consentflow/consentflow/internal/local/emulator"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

type multi []string

func (m *multi) String() string     { return strings.Join(*m, ",") }
func (m *multi) Set(v string) error { *m = append(*m, v); return nil }

type options struct {
	addr, configFile, publicURL, logLevel string
	workloads, returnURLs, providers      multi
	faults, idpUsers, idpClients          multi
	autoApprove, doubleEncode             bool
}

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("agentcore-local", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.addr, "addr", "127.0.0.1:8787", "listen address `HOST:PORT` (empty host refused; use 0.0.0.0 to listen on all interfaces)")
	fs.Var(&o.workloads, "workload", "workload identity `NAME` (repeatable)")
	fs.Var(&o.returnURLs, "return-url", "allowed return `URL` for every --workload (repeatable)")
	fs.Var(&o.providers, "provider", "credential provider `NAME` or NAME=apikey (repeatable)")
	fs.BoolVar(&o.autoApprove, "auto-approve", false, "consent at once, without showing the page")
	fs.BoolVar(&o.doubleEncode, "double-encode-session-id", false, "percent-encode session_id twice in the redirect to the return URL")
	fs.StringVar(&o.configFile, "config", "", "JSON configuration `FILE`")
	fs.StringVar(&o.publicURL, "public-url", "", "origin for authorization URLs (default: the request's Host)")
	fs.Var(&o.idpUsers, "idp-user", "IdP test user `SUBJECT[,EMAIL[,NAME]]` (repeatable; replaces the default users)")
	fs.Var(&o.idpClients, "idp-client", "IdP client `ID[:SECRET]=REDIRECT_URI` (repeatable)")
	fs.Var(&o.faults, "fault", "inject faults: `OP=N:KIND` with KIND throttle, internal or delay=DURATION (repeatable)")
	fs.StringVar(&o.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	return o, nil
}

type fault struct {
	op string
	n  int
	f  emulator.Fault
}

func parseFaultFlag(v string) (fault, error) {
	op, rest, ok := strings.Cut(v, "=")
	ns, kind, ok2 := strings.Cut(rest, ":")
	if !ok || !ok2 {
		return fault{}, fmt.Errorf("--fault %q: want OP=N:KIND", v)
	}
	if !emulator.IsOperation(op) {
		return fault{}, fmt.Errorf("--fault %q: unknown operation %q", v, op)
	}
	n, err := strconv.Atoi(ns)
	if err != nil || n < 1 {
		return fault{}, fmt.Errorf("--fault %q: N must be a positive integer", v)
	}
	f, err := emulator.ParseFault(kind)
	if err != nil {
		return fault{}, fmt.Errorf("--fault %q: %v", v, err)
	}
	return fault{op, n, f}, nil
}

// buildConfig merges the config file and the flags.
func buildConfig(o *options) (emulator.Config, []fault, error) {
	var cfg emulator.Config
	if o.configFile != "" {
		b, err := os.ReadFile(o.configFile)
		if err != nil {
			return cfg, nil, err
		}
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&cfg); err != nil {
			return cfg, nil, fmt.Errorf("--config %s: %v", o.configFile, err)
		}
	}
	if len(o.returnURLs) > 0 && len(o.workloads) == 0 {
		return cfg, nil, errors.New("--return-url needs at least one --workload")
	}
	for _, w := range o.workloads {
		cfg.Workloads = append(cfg.Workloads, emulator.Workload{Name: w, AllowedReturnURLs: append([]string(nil), o.returnURLs...)})
	}
	for _, p := range o.providers {
		name, kind, _ := strings.Cut(p, "=")
		switch kind {
		case "", "oauth2":
			cfg.Providers = append(cfg.Providers, emulator.Provider{Name: name, Kind: emulator.OAuth2})
		case "apikey":
			cfg.Providers = append(cfg.Providers, emulator.Provider{Name: name, Kind: emulator.APIKey})
		default:
			return cfg, nil, fmt.Errorf("--provider %q: kind must be oauth2 or apikey", p)
		}
	}
	if o.autoApprove {
		cfg.AutoApprove = true
	}
	if o.doubleEncode {
		cfg.DoubleEncodeSessionID = true
	}
	if o.publicURL != "" {
		cfg.PublicURL = o.publicURL
	}
	for _, v := range o.idpUsers {
		parts := strings.SplitN(v, ",", 3)
		u := emulator.TestUser{Subject: parts[0]}
		if len(parts) > 1 && parts[1] != "" {
			u.Email, u.EmailVerified = parts[1], true
		}
		if len(parts) > 2 {
			u.Name = parts[2]
		}
		cfg.IdP.Users = append(cfg.IdP.Users, u)
	}
	for _, v := range o.idpClients {
		c, err := parseIdPClient(v)
		if err != nil {
			return cfg, nil, err
		}
		merged := false
		for i := range cfg.IdP.Clients {
			if cc := &cfg.IdP.Clients[i]; cc.ClientID == c.ClientID {
				if cc.ClientSecret != c.ClientSecret {
					return cfg, nil, fmt.Errorf("--idp-client %q: client %q given with another secret", v, c.ClientID)
				}
				cc.RedirectURIs = append(cc.RedirectURIs, c.RedirectURIs...)
				merged = true
			}
		}
		if !merged {
			cfg.IdP.Clients = append(cfg.IdP.Clients, c)
		}
	}
	var faults []fault
	for _, v := range o.faults {
		f, err := parseFaultFlag(v)
		if err != nil {
			return cfg, nil, err
		}
		faults = append(faults, f)
	}
	return cfg, faults, nil
}

// parseIdPClient parses ID[:SECRET]=REDIRECT_URI.
func parseIdPClient(v string) (emulator.IdPClient, error) {
	idSecret, uri, ok := strings.Cut(v, "=")
	id, secret, _ := strings.Cut(idSecret, ":")
	if !ok || id == "" || uri == "" {
		return emulator.IdPClient{}, fmt.Errorf("--idp-client %q: want ID[:SECRET]=REDIRECT_URI", v)
	}
	return emulator.IdPClient{ClientID: id, ClientSecret: secret, RedirectURIs: []string{uri}}, nil
}

func checkAddr(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("--addr %q: %v", addr, err)
	}
	if host == "" {
		return fmt.Errorf("--addr %q has no host: use 127.0.0.1 for loopback, or 0.0.0.0 to listen on all interfaces on purpose", addr)
	}
	return nil
}

// run runs the command until ctx is done; it returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	o, err := parseFlags(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(stderr, "agentcore-local:", err)
		return 2
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(o.logLevel)); err != nil {
		fmt.Fprintln(stderr, "agentcore-local: --log-level:", err)
		return 2
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	cfg, faults, err := buildConfig(o)
	if err == nil {
		err = checkAddr(o.addr)
	}
	if err != nil {
		fmt.Fprintln(stderr, "agentcore-local:", err)
		return 2
	}
	cfg.Logger = log
	srv, err := emulator.New(cfg)
	if err != nil {
		fmt.Fprintln(stderr, "agentcore-local:", err)
		return 2
	}
	for _, f := range faults {
		srv.InjectFault(f.op, f.n, f.f)
	}
	if len(cfg.Workloads) == 0 {
		log.Warn("no workload identities configured: every call will fail with ResourceNotFoundException (use --workload)")
	}

	ln, err := net.Listen("tcp", o.addr)
	if err != nil {
		fmt.Fprintln(stderr, "agentcore-local:", err)
		return 1
	}
	// Serve gives the IdP its issuer (the listener's address) when --public-url is unset.
	_, stopServer, err := srv.Serve(ln)
	if err != nil {
		fmt.Fprintln(stderr, "agentcore-local:", err)
		return 1
	}
	fmt.Fprintf(stdout, "agentcore-local listening on http://%s\n", ln.Addr())
	fmt.Fprintf(stdout, "agentcore-local issuer %s\n", srv.Issuer())
	names := make([]string, 0, len(cfg.Workloads))
	for _, w := range cfg.Workloads {
		names = append(names, w.Name)
	}
	provs := make([]string, 0, len(cfg.Providers))
	for _, p := range cfg.Providers {
		provs = append(provs, p.Name)
	}
	clients := make([]string, 0, len(cfg.IdP.Clients))
	for _, c := range cfg.IdP.Clients {
		clients = append(clients, c.ClientID)
	}
	log.Info("started", "addr", ln.Addr().String(), "workloads", names, "providers", provs, "autoApprove", cfg.AutoApprove,
		"issuer", srv.Issuer(), "idpUsers", len(srv.TestUsers()), "idpClients", clients)

	<-ctx.Done()
	log.Info("shutting down")
	if err := stopServer(); err != nil {
		log.Error("shutdown", "err", err)
		return 1
	}
	log.Info("stopped")
	return 0
}
