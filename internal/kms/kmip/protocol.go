package kmip

import (
	"fmt"

	"github.com/tenantcrypt/tenantcrypt/internal/kms/kmip/ttlv"
)

// The KMIP 1.4 tags this client reads or writes (KMIP 1.4, section 9.1.3.1).
const (
	tagAttribute               ttlv.Tag = 0x420008
	tagAttributeName           ttlv.Tag = 0x42000A
	tagAttributeValue          ttlv.Tag = 0x42000B
	tagBatchCount              ttlv.Tag = 0x42000D
	tagBatchItem               ttlv.Tag = 0x42000F
	tagBlockCipherMode         ttlv.Tag = 0x420011
	tagCryptographicAlgorithm  ttlv.Tag = 0x420028
	tagCryptographicLength     ttlv.Tag = 0x42002A
	tagCryptographicParameters ttlv.Tag = 0x42002B
	tagCryptographicUsageMask  ttlv.Tag = 0x42002C
	tagIVCounterNonce          ttlv.Tag = 0x42003D
	tagObjectType              ttlv.Tag = 0x420057
	tagOperation               ttlv.Tag = 0x42005C
	tagProtocolVersion         ttlv.Tag = 0x420069
	tagProtocolVersionMajor    ttlv.Tag = 0x42006A
	tagProtocolVersionMinor    ttlv.Tag = 0x42006B
	tagQueryFunction           ttlv.Tag = 0x420074
	tagRequestHeader           ttlv.Tag = 0x420077
	tagRequestMessage          ttlv.Tag = 0x420078
	tagRequestPayload          ttlv.Tag = 0x420079
	tagResponseHeader          ttlv.Tag = 0x42007A
	tagResponseMessage         ttlv.Tag = 0x42007B
	tagResponsePayload         ttlv.Tag = 0x42007C
	tagResultMessage           ttlv.Tag = 0x42007D
	tagResultReason            ttlv.Tag = 0x42007E
	tagResultStatus            ttlv.Tag = 0x42007F
	tagServerInformation       ttlv.Tag = 0x420088
	tagState                   ttlv.Tag = 0x42008D
	tagUniqueIdentifier        ttlv.Tag = 0x420094
	tagVendorIdentification    ttlv.Tag = 0x42009D
	tagData                    ttlv.Tag = 0x4200C2
	tagRandomIV                ttlv.Tag = 0x4200C5
	tagTagLength               ttlv.Tag = 0x4200CE
	tagAuthEncryptionAddlData  ttlv.Tag = 0x4200FE
	tagAuthEncryptionTag       ttlv.Tag = 0x4200FF
)

// Operation is a KMIP operation.
type Operation uint32

// The operations this client performs.
const (
	OpGetAttributes    Operation = 0x0B
	OpQuery            Operation = 0x18
	OpDiscoverVersions Operation = 0x1E
	OpEncrypt          Operation = 0x1F
	OpDecrypt          Operation = 0x20
)

func (o Operation) String() string {
	switch o {
	case OpGetAttributes:
		return "GetAttributes"
	case OpQuery:
		return "Query"
	case OpDiscoverVersions:
		return "DiscoverVersions"
	case OpEncrypt:
		return "Encrypt"
	case OpDecrypt:
		return "Decrypt"
	}
	return "Operation(" + hex32(uint32(o)) + ")"
}

// Result statuses.
const (
	statusSuccess         = 0
	statusOperationFailed = 1
)

// ResultReason is why a KMIP server refused an operation.
type ResultReason uint32

// Result reasons (KMIP 1.4, 9.1.3.2.29; 0x43 is KMIP 2.0's).
const (
	ReasonItemNotFound                 ResultReason = 0x01
	ReasonResponseTooLarge             ResultReason = 0x02
	ReasonAuthenticationNotSuccessful  ResultReason = 0x03
	ReasonInvalidMessage               ResultReason = 0x04
	ReasonOperationNotSupported        ResultReason = 0x05
	ReasonMissingData                  ResultReason = 0x06
	ReasonInvalidField                 ResultReason = 0x07
	ReasonFeatureNotSupported          ResultReason = 0x08
	ReasonOperationCanceled            ResultReason = 0x09
	ReasonCryptographicFailure         ResultReason = 0x0A
	ReasonIllegalOperation             ResultReason = 0x0B
	ReasonPermissionDenied             ResultReason = 0x0C
	ReasonObjectArchived               ResultReason = 0x0D
	ReasonObjectDestroyed              ResultReason = 0x36
	ReasonObjectNotFound               ResultReason = 0x37
	ReasonNotAuthorised                ResultReason = 0x39
	ReasonServerLimitExceeded          ResultReason = 0x3A
	ReasonWrongKeyLifecycleState       ResultReason = 0x43
	ReasonProtectionStorageUnavailable ResultReason = 0x44
	ReasonGeneralFailure               ResultReason = 0x100
)

var reasonNames = map[ResultReason]string{
	ReasonItemNotFound:                 "Item Not Found",
	ReasonResponseTooLarge:             "Response Too Large",
	ReasonAuthenticationNotSuccessful:  "Authentication Not Successful",
	ReasonInvalidMessage:               "Invalid Message",
	ReasonOperationNotSupported:        "Operation Not Supported",
	ReasonMissingData:                  "Missing Data",
	ReasonInvalidField:                 "Invalid Field",
	ReasonFeatureNotSupported:          "Feature Not Supported",
	ReasonOperationCanceled:            "Operation Canceled By Requester",
	ReasonCryptographicFailure:         "Cryptographic Failure",
	ReasonIllegalOperation:             "Illegal Operation",
	ReasonPermissionDenied:             "Permission Denied",
	ReasonObjectArchived:               "Object Archived",
	ReasonObjectDestroyed:              "Object Destroyed",
	ReasonObjectNotFound:               "Object Not Found",
	ReasonNotAuthorised:                "Not Authorised",
	ReasonServerLimitExceeded:          "Server Limit Exceeded",
	ReasonWrongKeyLifecycleState:       "Wrong Key Lifecycle State",
	ReasonProtectionStorageUnavailable: "Protection Storage Unavailable",
	ReasonGeneralFailure:               "General Failure",
}

func (r ResultReason) String() string {
	if s, ok := reasonNames[r]; ok {
		return s
	}
	return "Result Reason " + hex32(uint32(r))
}

// State is a managed object's lifecycle state.
type State uint32

// KMIP object states (KMIP 1.4, 9.1.3.2.9). The zero value is not one.
const (
	StatePreActive            State = 1
	StateActive               State = 2
	StateDeactivated          State = 3
	StateCompromised          State = 4
	StateDestroyed            State = 5
	StateDestroyedCompromised State = 6
)

func (s State) String() string {
	switch s {
	case StatePreActive:
		return "Pre-Active"
	case StateActive:
		return "Active"
	case StateDeactivated:
		return "Deactivated"
	case StateCompromised:
		return "Compromised"
	case StateDestroyed:
		return "Destroyed"
	case StateDestroyedCompromised:
		return "Destroyed Compromised"
	}
	return "State " + hex32(uint32(s))
}

// ObjectType is a managed object's type.
type ObjectType uint32

// ObjectSymmetricKey is the only object type tenantcrypt uses.
const ObjectSymmetricKey ObjectType = 0x02

// Algorithm is a Cryptographic Algorithm enumeration value.
type Algorithm uint32

// AlgorithmAES is the only algorithm tenantcrypt uses.
const AlgorithmAES Algorithm = 0x03

// Cryptographic usage mask bits tenantcrypt needs.
const (
	UsageEncrypt uint32 = 0x04
	UsageDecrypt uint32 = 0x08
)

const (
	modeGCM       = 0x09
	queryOps      = 0x01
	queryServer   = 0x03
	gcmTagLength  = 16
	attrState     = "State"
	attrAlgorithm = "Cryptographic Algorithm"
	attrLength    = "Cryptographic Length"
	attrUsageMask = "Cryptographic Usage Mask"
	attrType      = "Object Type"
)

func hex32(v uint32) string { return fmt.Sprintf("%#x", v) }
