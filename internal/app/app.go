// Package app holds what the two functions' wiring packages share: reading
// configuration (environment variables named in internal/contract) and the
// options local runs and tests use. It builds no AWS client and imports no
// adapter, so each function links only the clients its own wiring package
// (internal/app/initiate, internal/app/callback) builds.
package app

import (
	"crypto/rand"
	"fmt"
	"time"

	"github.com/consentflow/consentflow/internal/contract"
	"github.com/consentflow/consentflow/internal/flow"
	"github.com/consentflow/consentflow/internal/state"
)

// Getenv reads configuration (os.Getenv in production, a map in tests).
type Getenv func(string) string

// Required returns the variable name, or an error naming it when unset.
func Required(get Getenv, name string) (string, error) {
	v := get(name)
	if v == "" {
		return "", fmt.Errorf("configuration: %s is not set", name)
	}
	return v, nil
}

// Common is the configuration both functions read: the sessions table,
// the AgentCore workload identity, the callback URL registered on it, and
// the session binding mode.
type Common struct {
	Table, WorkloadName, ReturnURL string
	Binding                        flow.BindingMode
}

// ReadCommon reads Common, naming the first missing or invalid variable.
func ReadCommon(get Getenv) (Common, error) {
	var c Common
	var err error
	for _, v := range []struct {
		name string
		dst  *string
	}{
		{contract.EnvSessionsTable, &c.Table},
		{contract.EnvWorkloadName, &c.WorkloadName},
		{contract.EnvReturnURL, &c.ReturnURL},
	} {
		if *v.dst, err = Required(get, v.name); err != nil {
			return Common{}, err
		}
	}
	if c.Binding, err = Binding(get); err != nil {
		return Common{}, err
	}
	return c, nil
}

// Binding reads contract.EnvBindingMode (default: code).
func Binding(get Getenv) (flow.BindingMode, error) {
	v := get(contract.EnvBindingMode)
	if v == "" {
		return flow.BindingCode, nil
	}
	m, err := flow.ParseBindingMode(v)
	if err != nil {
		return "", fmt.Errorf("configuration: %s: %w", contract.EnvBindingMode, err)
	}
	return m, nil
}

// AppReturnURLs reads contract.EnvAppReturnURLs (unset: none), the
// application URLs a workflow may name as its returnTo.
func AppReturnURLs(get Getenv) ([]string, error) {
	list, err := flow.ParseAppReturnURLs(get(contract.EnvAppReturnURLs))
	if err != nil {
		return nil, fmt.Errorf("configuration: %s: %w", contract.EnvAppReturnURLs, err)
	}
	return list, nil
}

// Or returns get(name), or def when it is unset.
func Or(get Getenv, name, def string) string {
	if v := get(name); v != "" {
		return v
	}
	return def
}

// RandomBytes fills b from crypto/rand (flow.Random).
func RandomBytes(b []byte) error {
	_, err := rand.Read(b)
	return err
}

// Option adjusts wiring for local runs and tests.
type Option func(*Options)

// Options are the applied Option values.
type Options struct {
	// Clock replaces time.Now.
	Clock flow.Clock
	// CompleteTimeout replaces the callback's CompleteResourceTokenAuth
	// budget (zero: the domain's default).
	CompleteTimeout time.Duration
	// StoreCallTimeout replaces the bound of each DynamoDB call (zero:
	// state.DefaultCallTimeout).
	StoreCallTimeout time.Duration
}

// WithStoreCallTimeout changes the bound of each DynamoDB call: local runs
// give DynamoDB Local, slow on a loaded machine, more than AWS needs.
func WithStoreCallTimeout(d time.Duration) Option {
	return func(o *Options) { o.StoreCallTimeout = d }
}

// WithClock replaces time.Now (local expiry tests).
func WithClock(c flow.Clock) Option { return func(o *Options) { o.Clock = c } }

// WithCompleteTimeout shortens the callback's CompleteResourceTokenAuth
// budget (fault tests).
func WithCompleteTimeout(d time.Duration) Option {
	return func(o *Options) { o.CompleteTimeout = d }
}

// StoreOptions are the session store's options these Options ask for.
func (o Options) StoreOptions() []state.Option {
	opts := []state.Option{state.WithClock(o.Clock)}
	if o.StoreCallTimeout > 0 {
		opts = append(opts, state.WithCallTimeout(o.StoreCallTimeout))
	}
	return opts
}

// Apply returns the defaults with opts applied.
func Apply(opts []Option) Options {
	o := Options{Clock: time.Now}
	for _, f := range opts {
		f(&o)
	}
	return o
}
