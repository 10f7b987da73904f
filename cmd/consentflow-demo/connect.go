package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"time"

	"github.com/google/uuid"

	"github.com/consentflow/consentflow/internal/contract"
	"github.com/consentflow/consentflow/internal/local/chromium"
	"github.com/consentflow/consentflow/internal/local/connectlocal"
	"github.com/consentflow/consentflow/internal/local/dynamolocal"
	"github.com/consentflow/consentflow/internal/local/runner"
)

// runConnect is the Amazon Connect customer-authentication demo (--connect):
// the local stack with the Connect stand-in and the callback's Connect
// route, one chat waiting in an "Authenticate Customer" block, and the
// redirect Amazon Cognito would send the customer's browser to after
// sign-in. It prints that URL (and a cancelled sign-in's), waits for the
// browser to open one (or opens it with headless Chromium under --auto),
// and prints the UpdateParticipantAuthentication call that resulted. It
// succeeds when Connect (the stand-in) accepted the call.
func runConnect(ctx context.Context, cfg config, out io.Writer) (err error) {
	d := &demo{cfg: cfg, out: out}
	var stops []func()
	defer func() {
		if len(stops) == 0 {
			return
		}
		d.step("stopping everything it started ...")
		for i := len(stops) - 1; i >= 0; i-- {
			stops[i]()
		}
		d.step("stopped: no process left, nothing listening")
	}()

	d.step("DynamoDB Local: looking for it in the cache (fetched on the first run) ...")
	emu, err := dynamolocal.EmulatorDir(ctx)
	if err != nil {
		return err
	}
	d.info("%s", emu)
	var chromiumPath string
	if cfg.auto {
		chromiumPath = chromium.ExecPath()
		if err := chromium.CheckExecPath(chromiumPath); err != nil {
			return err
		}
	}
	d.step("starting DynamoDB Local ...")
	db, err := dynamolocal.Start(ctx)
	if err != nil {
		return err
	}
	stops = append(stops, db.Stop)
	d.step("starting the Amazon Connect stand-in and the callback API with its Connect route ...")
	s, err := runner.Start(ctx, runner.Options{DynamoDB: db, Connect: true})
	if err != nil {
		return err
	}
	stops = append(stops, s.Close)
	d.info("%-32s %s  (instance %s)", "Amazon Connect stand-in", s.ConnectURL, runner.ConnectInstanceID)
	d.info("%-32s %s", "Connect redirect URI", s.ConnectCallbackURL)

	// Two chats wait in an Authenticate Customer block: one signs in, one cancels.
	state := s.Connect.StartAuthentication()
	cancelled := s.Connect.StartAuthentication()
	signedIn := s.ConnectCallbackURL + "?" + url.Values{"code": {uuid.NewString()}, "state": {state}}.Encode()
	cancelledURL := s.ConnectCallbackURL + "?" + url.Values{"error": {"access_denied"},
		"error_description": {"User cancelled the sign-in"}, "state": {cancelled}}.Encode()
	d.step("a chat waits for its customer to sign in; Cognito would now redirect the browser to:")
	fmt.Fprintln(out)
	d.info("signed in:  %s", signedIn)
	d.info("cancelled:  %s", cancelledURL)
	fmt.Fprintln(out)

	if cfg.auto {
		d.step("browser: opening the signed-in redirect with headless Chromium (%s) ...", chromiumPath)
		b, err := chromium.Start(ctx, chromium.Options{ExecPath: chromiumPath})
		if err != nil {
			return err
		}
		stops = append(stops, b.Close)
		p, err := b.NewPage()
		if err != nil {
			return err
		}
		stops = append(stops, p.Close)
		status, err := p.Open(ctx, signedIn)
		if err != nil {
			return err
		}
		o, err := p.Outcome(ctx)
		if err != nil {
			return err
		}
		d.info("the page: HTTP %d, %q", status, o.Heading)
	} else {
		d.info("Open one of them in a browser on this machine (once, then again: the second time calls nothing).")
		d.info("Or run `make demo-connect ARGS=--auto` to let headless Chromium do it.")
		fmt.Fprintln(out)
	}

	d.step("waiting up to %v for the callback to call UpdateParticipantAuthentication (Ctrl-C stops) ...", cfg.timeout)
	call, err := awaitConnectCall(ctx, s.Connect, cfg.timeout)
	if err != nil {
		return err
	}
	d.step("Amazon Connect received UpdateParticipantAuthentication:")
	d.info("InstanceId        %s", call.InstanceID)
	d.info("State             %s (masked)", Mask(call.State))
	if call.Code != "" {
		d.info("Code              %s (masked)", Mask(call.Code))
	}
	if call.Error != "" {
		d.info("Error             %s", call.Error)
		d.info("ErrorDescription  %s", call.ErrorDescription)
	}
	if call.Result != "" {
		return fmt.Errorf("the stand-in refused the call with %s", call.Result)
	}
	a, _ := s.Connect.Authentication(call.State)
	d.info("answer            200 {} (the chat's authentication is now %s)", a.Status)
	d.step("done: Connect acknowledged the redirect; in a real chat, the Authenticate Customer block now continues (%s)",
		map[connectlocal.AuthStatus]string{
			connectlocal.CodeReceived:  "Connect fetches the identity from Cognito, asynchronously",
			connectlocal.ErrorReceived: "its error branch runs",
		}[a.Status])
	d.info("(route %s, instance variable %s)", contract.ConnectCallbackPath, contract.EnvConnectInstanceID)
	return nil
}

// awaitConnectCall waits for the stand-in's first call.
func awaitConnectCall(ctx context.Context, s *connectlocal.Server, timeout time.Duration) (connectlocal.Call, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		if calls := s.Calls(); len(calls) > 0 {
			return calls[0], nil
		}
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return connectlocal.Call{}, fmt.Errorf("nobody opened a redirect within %v", timeout)
			}
			return connectlocal.Call{}, ctx.Err()
		case <-tick.C:
		}
	}
}
