// Package browser holds the browser end-to-end tests: the whole consent
// flow through the real pages in headless Chromium (Debian /usr/bin/chromium,
// driven by internal/local/chromium), against the local stack
// (internal/local/runner): DynamoDB Local, the AgentCore Identity
// emulator, the Step Functions and EventBridge stand-ins and the production
// callback handler behind the API Gateway stand-in.
//
// One Chromium serves every test of the binary; each test gets a tab in its
// own browser context. A failing test leaves a screenshot and the page HTML
// under $CONSENTFLOW_ARTIFACTS (default <repo>/artifacts) and logs their
// paths; CONSENTFLOW_SCREENSHOTS=1 saves the confirmation and success pages
// of the happy path too. A missing Chromium fails the tests unless
// CONSENTFLOW_SKIP_BROWSER=1.
package browser
