// Command infra is consentflow's CDK app (cdk.json: "app": "go run ./infra"). It builds the two
// Lambda functions with the local Go toolchain, then defines and synthesizes the stack.
package main

import (
	"fmt"
	"os"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/jsii-runtime-go"

	"github.com/consentflow/consentflow/infra/gobuild"
	"github.com/consentflow/consentflow/infra/stack"
)

func main() {
	if err := run(); err != nil {
		// Leading newline: the jsii runtime may have printed an unterminated line on Close.
		fmt.Fprintln(os.Stderr, "\nconsentflow infra:", err)
		os.Exit(1)
	}
}

func run() error {
	defer jsii.Close()
	app := awscdk.NewApp(nil)
	cfg, err := stack.LoadConfig(func(k string) any { return app.Node().TryGetContext(jsii.String(k)) })
	if err != nil {
		return err
	}
	b, err := gobuild.NewBuilder("")
	if err != nil {
		return err
	}
	defer b.Cleanup()
	initiate, err := b.Build("initiate")
	if err != nil {
		return err
	}
	callback, err := b.Build("callback")
	if err != nil {
		return err
	}
	resumer, err := b.Build("resumer")
	if err != nil {
		return err
	}
	var continueDir string
	if len(cfg.AgentRuntimeARNs) > 0 {
		if continueDir, err = b.Build("continue"); err != nil {
			return err
		}
	}
	stack.New(app, stackName(app), &stack.Props{
		StackProps: awscdk.StackProps{
			// Environment-agnostic: the CLI's credentials and region pick the account at deploy
			// time; every ARN in the template uses the AWS::Partition/Region/AccountId pseudo
			// parameters.
			Description: jsii.String("consentflow: AgentCore Identity 3-legged OAuth with session binding"),
		},
		Config:          cfg,
		InitiateCodeDir: initiate,
		CallbackCodeDir: callback,
		ResumerCodeDir:  resumer,
		ContinueCodeDir: continueDir,
	})
	stack.EnableNag(app)
	app.Synth(nil)
	return nil
}

// stackName is the context stackName, default ConsentFlow.
func stackName(app awscdk.App) string {
	if v, ok := app.Node().TryGetContext(jsii.String("stackName")).(string); ok && v != "" {
		return v
	}
	return "ConsentFlow"
}
