// CloudNativePG's API types, the input of controller-gen (tools/build.sh generates the CRDs its
// operator installs from them; they are never committed).
package cnpg

import _ "github.com/cloudnative-pg/cloudnative-pg/api/v1"
