package state

import (
	"reflect"
	"strings"
	"testing"

	"github.com/consentflow/consentflow/internal/contract"
)

// Struct tags cannot name constants: check that the items' key and TTL
// attributes are the ones the CDK stack creates (package contract).
func TestItemTagsFollowContract(t *testing.T) {
	for _, v := range []any{item{}, taskItem{}, loginItem{}, connectItem{}} {
		typ := reflect.TypeOf(v)
		for field, want := range map[string]string{"PK": contract.AttrPK, "TTL": contract.AttrTTL} {
			f, ok := typ.FieldByName(field)
			if !ok {
				t.Fatalf("%s has no field %s", typ, field)
			}
			if got, _, _ := strings.Cut(f.Tag.Get("dynamodbav"), ","); got != want {
				t.Errorf("%s.%s is stored as %q, the table's attribute is %q", typ, field, got, want)
			}
		}
	}
}
