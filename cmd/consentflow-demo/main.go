// Command consentflow-demo runs the whole consent flow on this machine: no
// AWS account, no OAuth app, no Docker.
//
// It starts DynamoDB Local, the AgentCore Identity emulator, the Step
// Functions and EventBridge stand-ins and the production callback handler
// behind an API Gateway HTTP API stand-in, all on 127.0.0.1 with free
// ports; then runs one authorization the way the state machine does
// (a task token, the production initiate handler), prints the authorization
// URL and the verification code from the published AuthorizationRequired
// event, waits for the person to consent and confirm in their browser,
// prints the workflow's result and proves the token is in the vault by
// fetching it through the AWS SDK (printed masked).
//
//	make demo                       # you click through it in your browser
//	make demo BINDING=oidc          # ... and sign in at the emulator's OpenID provider
//	make demo-auto                  # headless Chromium clicks through it
//	make demo AGENT=0               # without continuing the example agent (examples/agent)
//	go run ./cmd/consentflow-demo --user alice --scopes repo,read:user
//	make demo-connect               # Amazon Connect customer authentication
//
// With --connect it shows the Amazon Connect customer-authentication route
// instead: a chat waiting in an "Authenticate Customer" block (the Connect
// stand-in), the Cognito-style redirect URL to open, and the
// UpdateParticipantAuthentication call that resulted (see connect.go).
//
// Exit status: 0 when the workflow resumed AUTHORIZED and the token was
// fetched; 1 otherwise (the reason is printed); 2 for bad flags; 130 when
// interrupted. Ctrl-C or the end stops every process it started.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/consentflow/consentflow/internal/contract"
)

func main() {
	var c config
	fs := flag.NewFlagSet("consentflow-demo", flag.ContinueOnError)
	fs.BoolVar(&c.auto, "auto", false, "drive the browser part with headless Chromium instead of waiting for you")
	fs.StringVar(&c.user, "user", "demo-user", "the user id the authorization is for")
	fs.StringVar(&c.provider, "provider", "github", "the credential provider (registered in the emulator)")
	scopes := fs.String("scopes", "repo,read:user", "the OAuth scopes, comma-separated")
	fs.StringVar(&c.binding, "binding", contract.BindingCode, `session binding: "code" (verification code), "oidc" (sign in at the emulator's OpenID provider), "oidc+code" or "none"`)
	fs.BoolVar(&c.agent, "agent", false, "continue the example agent after consent (continueWith, ContinueAgent): it fetches the token from the vault and calls the provider's API")
	fs.DurationVar(&c.timeout, "timeout", contract.SessionValidity, "how long to wait for the consent (the session validity)")
	fs.BoolVar(&c.connect, "connect", false, "show Amazon Connect customer authentication instead: print a Cognito-style redirect URL to open and the Connect call that results")
	if err := fs.Parse(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		os.Exit(2)
	}
	c.scopes = splitScopes(*scopes)
	if err := c.check(); err != nil || fs.NArg() > 0 {
		if err == nil {
			err = fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
		}
		fmt.Fprintln(os.Stderr, "consentflow-demo:", err)
		os.Exit(2)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	demo := run
	if c.connect {
		demo = runConnect
	}
	err := demo(ctx, c, os.Stdout)
	interrupted := ctx.Err() != nil
	stop()
	switch {
	case interrupted:
		fmt.Fprintln(os.Stderr, "consentflow-demo: interrupted; everything it started is stopped")
		os.Exit(130)
	case err != nil:
		fmt.Fprintln(os.Stderr, "consentflow-demo: FAILED:", err)
		os.Exit(1)
	}
}
