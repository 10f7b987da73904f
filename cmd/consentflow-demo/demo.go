package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/bedrockagentcore"
	"github.com/aws/aws-sdk-go-v2/service/bedrockagentcore/types"

	"github.com/consentflow/consentflow/internal/contract"
	"github.com/consentflow/consentflow/internal/flow"
	"github.com/consentflow/consentflow/internal/local/chromium"
	"github.com/consentflow/consentflow/internal/local/dynamolocal"
	"github.com/consentflow/consentflow/internal/local/emulator"
	"github.com/consentflow/consentflow/internal/local/eventslocal"
	"github.com/consentflow/consentflow/internal/local/runner"
	"github.com/consentflow/consentflow/internal/local/sfnlocal"
)

type config struct {
	auto     bool
	user     string
	provider string
	scopes   []string
	binding  string
	timeout  time.Duration
	// connect runs the Amazon Connect customer-authentication demo.
	connect bool
	// agent: continue the example agent after consent (continueWith, the ContinueAgent step).
	agent bool
}

func (c config) check() error {
	switch {
	case c.user == "":
		return errors.New("--user must not be empty")
	case c.provider == "":
		return errors.New("--provider must not be empty")
	case len(c.scopes) == 0:
		return errors.New("--scopes must name at least one scope")
	case !slices.Contains(contract.BindingModes(), c.binding):
		return fmt.Errorf(`--binding must be one of %s, not %q`, strings.Join(contract.BindingModes(), ", "), c.binding)
	case c.timeout <= 0:
		return errors.New("--timeout must be positive")
	}
	return nil
}

// signIn reports whether the binding mode signs the person in.
func (c config) signIn() bool {
	return c.binding == contract.BindingOIDC || c.binding == contract.BindingOIDCCode
}

func splitScopes(s string) []string {
	var out []string
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' }) {
		out = append(out, f)
	}
	return out
}

// demo prints progress lines and remembers what to stop.
type demo struct {
	cfg config
	out io.Writer
}

func (d *demo) step(format string, args ...any) {
	fmt.Fprintf(d.out, "==> "+format+"\n", args...)
}

func (d *demo) info(format string, args ...any) {
	fmt.Fprintf(d.out, "    "+format+"\n", args...)
}

// run does the whole demo; everything it starts is stopped before it
// returns, whether it succeeds, fails or ctx is cancelled (Ctrl-C).
func run(ctx context.Context, cfg config, out io.Writer) (err error) {
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

	// Set-up and start-up.
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
	t0 := time.Now()
	db, err := dynamolocal.Start(ctx)
	if err != nil {
		return err
	}
	stops = append(stops, db.Stop)
	d.info("%-32s %s  (%.1fs)", "DynamoDB Local", db.Endpoint(), time.Since(t0).Seconds())

	d.step("starting the AgentCore Identity emulator, the Step Functions and EventBridge stand-ins and the callback API ...")
	ro := runner.Options{
		Binding:   cfg.binding,
		Providers: []string{cfg.provider},
		DynamoDB:  db,
	}
	if cfg.agent {
		ro.AgentRuntimeARNs = []string{demoRuntimeARN}
	}
	s, err := runner.Start(ctx, ro)
	if err != nil {
		return err
	}
	stops = append(stops, s.Close)
	d.info("%-32s %s (created as the stack does)", "sessions table", s.Table)
	d.info("%-32s %s  (workload %s, provider %s)", "AgentCore Identity emulator", s.EmulatorURL, runner.WorkloadName, cfg.provider)
	d.info("%-32s %s", "Step Functions stand-in", s.SFNURL)
	d.info("%-32s %s", "EventBridge stand-in", s.EventsURL)
	d.info("%-32s %s", "callback (API Gateway stand-in)", s.CallbackURL)
	d.info("%-32s %s", "session binding", cfg.binding)
	if cfg.signIn() {
		// The person signs in as the flow's user at the emulator's OpenID
		// provider; bob (also listed) shows what another account gets.
		if err := s.Emulator.AddTestUser(emulator.TestUser{Subject: cfg.user, Email: cfg.user + "@example.com", EmailVerified: true}); err != nil {
			return err
		}
		d.info("%-32s %s  (sign in as %q; bob shows the refusal)", "sign-in provider (OpenID)", s.Emulator.Issuer(), cfg.user)
	}

	if cfg.agent {
		d.step("starting the example agent (examples/agent) as AgentCore Runtime %s ...", demoRuntimeARN)
		stop, err := startAgent(s, cfg)
		if err != nil {
			return err
		}
		stops = append(stops, stop)
		d.info("%-32s InvokeAgentRuntime on the emulator -> POST /invocations; the agent mints for workload %s and the invocation's user", "agent", runner.WorkloadName)
	}

	var page *chromium.Page
	if cfg.auto {
		d.step("starting headless Chromium (%s) ...", chromiumPath)
		b, err := chromium.Start(ctx, chromium.Options{ExecPath: chromiumPath})
		if err != nil {
			return err
		}
		stops = append(stops, b.Close)
		if page, err = b.NewPage(); err != nil {
			return err
		}
		stops = append(stops, page.Close)
	}

	// One authorization, as the state machine runs it.
	d.step("starting an execution: its Step Functions task (callback pattern, .waitForTaskToken, timeout %v) ...", cfg.timeout)
	exec, err := s.StartExecution(sfnlocal.WithTimeout(cfg.timeout))
	if err != nil {
		return err
	}
	token := exec.TaskToken
	d.info("execution %s", exec.ARN)
	sub := s.Events.Subscribe(eventslocal.Match{DetailType: contract.DetailTypeAuthorizationRequired})
	defer sub.Close()
	done := s.Events.Subscribe(eventslocal.Match{Source: contract.EventSource})
	defer done.Close()

	d.step("invoking the initiate handler for user %q, provider %q, scopes %s ...", cfg.user, cfg.provider, strings.Join(cfg.scopes, " "))
	input := map[string]any{"userId": cfg.user, "provider": cfg.provider, "scopes": cfg.scopes}
	if cfg.agent {
		input["continueWith"] = continueWith()
	}
	rawInput, err := json.Marshal(input)
	if err != nil {
		return err
	}
	payload, err := exec.Payload(rawInput) // {taskToken, executionArn, input}, as the state machine sends it
	if err != nil {
		return err
	}
	res, err := s.Initiate(ctx, payload)
	if err != nil {
		return fmt.Errorf("the initiate handler failed: %v", err)
	}
	d.info("status %s, correlation id %s", res.Status, res.CorrelationID)

	switch res.Status {
	case flow.StatusAuthorized:
		d.info("a token is already in the vault: no consent needed")
	case flow.StatusAuthorizationRequired:
		ev, err := awaitEvent(ctx, sub)
		if err != nil {
			return err
		}
		d.step("AuthorizationRequired event published (correlation id %s)", ev.CorrelationID)
		fmt.Fprintln(out)
		d.info("authorization URL:  %s", ev.AuthorizationURL)
		if ev.VerificationCode != "" {
			d.info("verification code:  %s", ev.VerificationCode)
		}
		d.info("valid until:        %s (%v from now)", ev.ExpiresAt.Local().Format("15:04:05"), time.Until(ev.ExpiresAt).Round(time.Second))
		fmt.Fprintln(out)
		if cfg.auto {
			if err := d.drive(ctx, page, ev); err != nil {
				return err
			}
		} else {
			d.instructions(ev)
		}
	default:
		return fmt.Errorf("the initiate handler answered status %q", res.Status)
	}

	d.step("waiting up to %v for the workflow to resume (SendTaskSuccess / SendTaskFailure; Ctrl-C stops) ...", cfg.timeout)
	r, err := s.SFN.Wait(ctx, token)
	if err != nil {
		return fmt.Errorf("waiting for the workflow: %w", err)
	}
	var output flow.Result
	switch r.Status {
	case sfnlocal.StatusSucceeded:
		d.step("task SUCCEEDED, output: %s", compactJSON(r.Output))
		if err := json.Unmarshal(r.Output, &output); err != nil {
			return fmt.Errorf("the task output is not a result: %v", err)
		}
		if output.Status != flow.StatusAuthorized {
			return fmt.Errorf("the workflow resumed with status %q, not %s", output.Status, flow.StatusAuthorized)
		}
		if res.Status == flow.StatusAuthorizationRequired {
			// The resumer publishes it from the table's stream.
			e, err := awaitCompletion(ctx, done, res.CorrelationID, 10*time.Second)
			if err != nil {
				return err
			}
			d.step("%s event published (correlation id %s): %s", e.DetailType, res.CorrelationID, compactJSON(e.Detail))
		}
	default:
		d.step("task %s: error %s, cause %q", r.Status, r.Error, r.Cause)
		if r.Error != sfnlocal.TimeoutError { // a session nobody visited settles nowhere: no event
			if e, err := awaitCompletion(ctx, done, res.CorrelationID, 5*time.Second); err == nil {
				d.step("%s event published (correlation id %s): %s", e.DetailType, res.CorrelationID, compactJSON(e.Detail))
			}
		}
		reason := fmt.Sprintf("the workflow did not resume AUTHORIZED: task %s with %s", r.Status, r.Error)
		if r.Error == sfnlocal.TimeoutError {
			reason += fmt.Sprintf(" (nobody confirmed within %v)", cfg.timeout)
		}
		return errors.New(reason)
	}

	d.step("fetching the token from the vault: GetResourceOauth2Token through the AWS SDK ...")
	tok, err := fetchToken(ctx, s, cfg)
	if err != nil {
		return fmt.Errorf("the token is not in the vault: %w", err)
	}
	d.info("access token: %s (masked)", Mask(tok))
	if cfg.agent {
		d.step("ContinueAgent: InvokeAgentRuntime as %q; the agent gets the token from the vault and calls the provider's API ...", cfg.user)
		sum, err := continueAgent(ctx, s, exec.ARN, r.Output)
		if err != nil {
			return err
		}
		ans, _ := json.Marshal(sum)
		d.step("the agent answered: %s", ans)
		var a struct {
			Status string `json:"status"`
		}
		if json.Unmarshal(sum.Body, &a) != nil || a.Status != "DONE" {
			return fmt.Errorf("the agent did not get through to the provider: %s", ans)
		}
	}
	d.step("done: the workflow resumed %s and the token for %q / %s / %s is in the vault",
		output.Status, cfg.user, cfg.provider, strings.Join(cfg.scopes, " "))
	return nil
}

func (d *demo) instructions(ev flow.AuthorizationRequired) {
	d.info("Now, in a browser on this machine:")
	d.info("  1. open the authorization URL above;")
	d.info("  2. on the provider's page, click Allow (Deny fails the workflow with %s);", contract.ErrConsentDenied)
	switch {
	case d.cfg.signIn() && ev.VerificationCode != "":
		d.info("  3. on \"Confirm the connection\", type the verification code %s and click \"Sign in and connect\";", ev.VerificationCode)
		d.info("  4. on the sign-in page, choose %q (choosing another account shows the refusal).", d.cfg.user)
	case d.cfg.signIn():
		d.info("  3. on \"Confirm the connection\", click \"Sign in and connect\";")
		d.info("  4. on the sign-in page, choose %q (choosing another account shows the refusal).", d.cfg.user)
	case ev.VerificationCode != "":
		d.info("  3. on \"Confirm the connection\", type the verification code %s and click Connect.", ev.VerificationCode)
		d.info("     (%d wrong codes fail the workflow with %s.)", flow.MaxCodeAttempts, contract.ErrBindingFailed)
	default:
		d.info("  3. on \"Confirm the connection\", click Connect.")
	}
	d.info("Or run `make demo-auto` to let headless Chromium do it.")
	fmt.Fprintln(d.out)
}

// drive plays the person with headless Chromium: Allow, code, Connect.
func (d *demo) drive(ctx context.Context, p *chromium.Page, ev flow.AuthorizationRequired) (err error) {
	defer func() {
		if err != nil && ctx.Err() == nil {
			d.saveArtifacts(p)
		}
	}()
	d.step("browser: opening the authorization URL and clicking Allow ...")
	status, err := p.Consent(ctx, ev.AuthorizationURL, chromium.Allow)
	if err != nil {
		return err
	}
	o, err := p.Outcome(ctx)
	if err != nil {
		return err
	}
	d.info("landed on the callback: HTTP %d, %q", status, o.Heading)
	if o.Kind != "confirm" {
		return fmt.Errorf("expected the confirmation page after Allow, got HTTP %d %q", status, o)
	}
	if agent, err := p.ContinuesAgent(ctx); err == nil && agent != "" {
		d.info("the page says: %q", agent)
	}
	if ev.VerificationCode != "" {
		d.step("browser: typing the verification code and clicking Connect ...")
	} else {
		d.step("browser: clicking Connect ...")
	}
	if status, err = p.EnterCode(ctx, ev.VerificationCode); err != nil {
		return err
	}
	if d.cfg.signIn() {
		d.info("sign-in page: HTTP %d", status)
		d.step("browser: signing in as %q at the OpenID provider ...", d.cfg.user)
		if status, err = p.SignIn(ctx, d.cfg.user); err != nil {
			return err
		}
	}
	if o, err = p.Outcome(ctx); err != nil {
		return err
	}
	d.info("answer: HTTP %d, %q", status, o.Heading)
	if o.Kind != "ok" || o.Heading != "Connected" {
		return fmt.Errorf("expected the page to say Connected, it says HTTP %d %q", status, o)
	}
	return nil
}

func (d *demo) saveArtifacts(p *chromium.Page) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	a, err := p.SaveArtifacts(ctx, chromium.ArtifactsDir(), "consentflow-demo-"+time.Now().Format("20060102-150405"))
	if a.PNG != "" {
		d.info("screenshot of the page: %s", a.PNG)
	}
	if a.HTML != "" {
		d.info("HTML of the page:       %s", a.HTML)
	}
	if err != nil {
		d.info("(saving artifacts: %v)", err)
	}
}

// awaitCompletion waits up to timeout for the AuthorizationCompleted or
// AuthorizationFailed event of the session correlationID.
func awaitCompletion(ctx context.Context, sub *eventslocal.Subscription, correlationID string, timeout time.Duration) (eventslocal.Event, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		select {
		case e, ok := <-sub.C:
			if !ok {
				return e, errors.New("the event subscription closed")
			}
			if e.DetailType != contract.DetailTypeAuthorizationCompleted && e.DetailType != contract.DetailTypeAuthorizationFailed {
				continue
			}
			var d struct {
				CorrelationID string `json:"correlationId"`
			}
			if json.Unmarshal(e.Detail, &d) == nil && d.CorrelationID == correlationID {
				return e, nil
			}
		case <-ctx.Done():
			return eventslocal.Event{}, fmt.Errorf("no completion event was published for %s within %v", correlationID, timeout)
		}
	}
}

func awaitEvent(ctx context.Context, sub *eventslocal.Subscription) (flow.AuthorizationRequired, error) {
	var ev flow.AuthorizationRequired
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	select {
	case e, ok := <-sub.C:
		if !ok {
			return ev, errors.New("the event subscription closed")
		}
		if err := json.Unmarshal(e.Detail, &ev); err != nil {
			return ev, fmt.Errorf("the AuthorizationRequired event does not parse: %v", err)
		}
		if ev.AuthorizationURL == "" {
			return ev, errors.New("the AuthorizationRequired event has no authorization URL")
		}
		return ev, nil
	case <-ctx.Done():
		return ev, errors.New("no AuthorizationRequired event was published")
	}
}

// fetchToken asks the vault for the token of the same user, provider and
// scopes, as the workflow's next step would.
func fetchToken(ctx context.Context, s *runner.Stack, cfg config) (string, error) {
	ac := s.Clients.AgentCore
	wat, err := ac.GetWorkloadAccessTokenForUserId(ctx, &bedrockagentcore.GetWorkloadAccessTokenForUserIdInput{
		WorkloadName: aws.String(runner.WorkloadName), UserId: aws.String(cfg.user)})
	if err != nil {
		return "", fmt.Errorf("GetWorkloadAccessTokenForUserId: %w", err)
	}
	out, err := ac.GetResourceOauth2Token(ctx, &bedrockagentcore.GetResourceOauth2TokenInput{
		WorkloadIdentityToken:          wat.WorkloadAccessToken,
		ResourceCredentialProviderName: aws.String(cfg.provider),
		Scopes:                         cfg.scopes,
		Oauth2Flow:                     types.Oauth2FlowTypeUserFederation,
		ResourceOauth2ReturnUrl:        aws.String(s.CallbackURL),
	})
	if err != nil {
		return "", fmt.Errorf("GetResourceOauth2Token: %w", err)
	}
	if tok := aws.ToString(out.AccessToken); tok != "" {
		return tok, nil
	}
	return "", fmt.Errorf("GetResourceOauth2Token answered no token (session status %q)", out.SessionStatus)
}

// Mask shows a secret's first 4 characters and its length only.
func Mask(s string) string {
	n := utf8.RuneCountInString(s)
	if n < 16 {
		return fmt.Sprintf("…(%d chars)", n)
	}
	return fmt.Sprintf("%s…(%d chars)", string([]rune(s)[:4]), n)
}

func compactJSON(b []byte) string {
	var v any
	if json.Unmarshal(b, &v) != nil {
		return "(not JSON)"
	}
	c, _ := json.Marshal(v)
	return string(c)
}
