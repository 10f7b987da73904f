package stack

import (
	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"
	"github.com/cdklabs/cdk-nag-go/cdknag/v2"
)

// EnableNag runs the cdk-nag AwsSolutions pack over scope at synthesis: a finding without a
// suppression is an error annotation, which fails `cdk synth`.
func EnableNag(scope constructs.IConstruct) {
	awscdk.Aspects_Of(scope).Add(cdknag.NewAwsSolutionsChecks(&cdknag.NagPackProps{Verbose: jsii.Bool(true)}), nil)
}

// addNagSuppressions records, next to each resource, why an AwsSolutions finding does not apply.
// Each suppression is as narrow as cdk-nag allows (appliesTo names the exact finding).
func addNagSuppressions(cf *ConsentFlow) {
	suppress := func(c constructs.IConstruct, id, reason string, appliesTo ...any) {
		sup := &cdknag.NagPackSuppression{Id: jsii.String(id), Reason: jsii.String(reason)}
		if len(appliesTo) > 0 {
			sup.AppliesTo = &appliesTo
		}
		cdknag.NagSuppressions_AddResourceSuppressions(c, &[]*cdknag.NagPackSuppression{sup}, jsii.Bool(true))
	}

	// The callback is the OAuth return URL the user's browser is redirected to by the provider:
	// it cannot carry AWS or bearer credentials. It authenticates the request itself (session id
	// + OAuth state checked in constant time, one-time verification code, conditional writes).
	suppress(cf.API, "AwsSolutions-APIG4",
		"Public OAuth redirect endpoint: the browser arrives from the provider without credentials; the callback function authenticates each request by session id, OAuth state and the one-time verification code "+
			"(with an oidc binding also the login callback route, where the application's OpenID Connect provider returns the browser after sign-in; "+
			"with an Amazon Connect instance also the Connect route, where Cognito returns a customer: validated, forwarded to that instance at most once, Connect checks the state).")

	xray := "Resource::* is for xray:PutTraceSegments and xray:PutTelemetryRecords only (active tracing), which have no resource-level permissions; every other statement names its resources."
	suppress(cf.InitiateRole, "AwsSolutions-IAM5", xray, "Resource::*")
	suppress(cf.CallbackRole, "AwsSolutions-IAM5", xray, "Resource::*")
	suppress(cf.ResumerRole, "AwsSolutions-IAM5", xray+" For the resumer also dynamodb:ListStreams, which the event source mapping's stream grant (Table.grantStreamRead) needs and which has no resource-level permissions; the stream's own actions name the table's stream.", "Resource::*")
	if cf.ContinueRole != nil {
		suppress(cf.ContinueRole, "AwsSolutions-IAM5", xray, "Resource::*")
	}
	suppress(cf.ResumerDLQ, "AwsSolutions-SQS3",
		"This queue is itself the dead-letter queue of the resumer's event source mapping (stream records it gave up on); a DLQ of a DLQ has nothing to add, and its messages are alarmed (ResumerDLQAlarm).")

	sm := cf.StateMachine.Role()
	suppress(sm, "AwsSolutions-IAM5",
		"Resource::* is for the CloudWatch Logs vended-log delivery actions (execution logging) and X-Ray (tracing), which have no resource-level permissions.",
		"Resource::*")
	suppress(sm, "AwsSolutions-IAM5",
		"lambda:InvokeFunction on the initiate function's ARN with any qualifier (ARN:*): added by the LambdaInvoke task so a version or alias can be invoked; it is still this one function only.",
		&cdknag.RegexAppliesTo{Regex: jsii.String(`/^Resource::<Initiate[A-Za-z0-9]+\.Arn>:\*$/`)})
	if cf.Continue != nil {
		suppress(sm, "AwsSolutions-IAM5",
			"lambda:InvokeFunction on the continue function's ARN with any qualifier (ARN:*): added by the LambdaInvoke task so a version or alias can be invoked; it is still this one function only.",
			&cdknag.RegexAppliesTo{Regex: jsii.String(`/^Resource::<Continue[A-Za-z0-9]+\.Arn>:\*$/`)})
	}
}
