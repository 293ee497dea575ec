package wire

// Exchange types (RFC 7296 §3.1).
const (
	IKESAInit     uint8 = 34
	IKEAuth       uint8 = 35
	CreateChildSA uint8 = 36
	Informational uint8 = 37
)

// Header flags (RFC 7296 §3.1).
const (
	FlagInitiator uint8 = 0x08
	FlagVersion   uint8 = 0x10
	FlagResponse  uint8 = 0x20
)

// PayloadType is the Next Payload value naming a payload (RFC 7296 §3.2).
type PayloadType uint8

// Payload types.
const (
	PayloadNone      PayloadType = 0
	PayloadSA        PayloadType = 33
	PayloadKE        PayloadType = 34
	PayloadIDi       PayloadType = 35
	PayloadIDr       PayloadType = 36
	PayloadCERT      PayloadType = 37
	PayloadCERTREQ   PayloadType = 38
	PayloadAUTH      PayloadType = 39
	PayloadNonce     PayloadType = 40
	PayloadN         PayloadType = 41
	PayloadD         PayloadType = 42
	PayloadVID       PayloadType = 43
	PayloadTSi       PayloadType = 44
	PayloadTSr       PayloadType = 45
	PayloadSK        PayloadType = 46
	PayloadCP        PayloadType = 47
	PayloadEAP       PayloadType = 48
	PayloadSKF       PayloadType = 53
	criticalBit                  = 0x80
	genericHeaderLen             = 4
)

// Protocol IDs (RFC 7296 §3.3.1).
const (
	ProtoIKE uint8 = 1
	ProtoAH  uint8 = 2
	ProtoESP uint8 = 3
)

// Transform types (RFC 7296 §3.3.2).
const (
	TransformENCR  uint8 = 1
	TransformPRF   uint8 = 2
	TransformINTEG uint8 = 3
	TransformKE    uint8 = 4
	TransformESN   uint8 = 5
)

// Transform IDs.
const (
	EncrAESCBC           uint16 = 12
	EncrAESGCM16         uint16 = 20
	EncrChaCha20Poly1305 uint16 = 28

	PRFHMACSHA256 uint16 = 5
	PRFHMACSHA384 uint16 = 6
	PRFHMACSHA512 uint16 = 7

	IntegNone          uint16 = 0
	IntegHMACSHA256128 uint16 = 12
	IntegHMACSHA384192 uint16 = 13
	IntegHMACSHA512256 uint16 = 14

	GroupMODP2048 uint16 = 14
	GroupECP256   uint16 = 19
	GroupECP384   uint16 = 20
	GroupX25519   uint16 = 31

	ESNNone uint16 = 0
	ESNOn   uint16 = 1

	// AttrKeyLength is the only transform attribute defined (TV format).
	AttrKeyLength uint16 = 14
)

// Identification types (RFC 7296 §3.5).
const (
	IDIPv4   uint8 = 1
	IDFQDN   uint8 = 2
	IDRFC822 uint8 = 3
	IDIPv6   uint8 = 5
	IDDN     uint8 = 9
	IDKeyID  uint8 = 11
)

// Authentication methods (RFC 7296 §3.8, RFC 7427).
const (
	AuthRSA       uint8 = 1
	AuthPSK       uint8 = 2
	AuthECDSA256  uint8 = 9
	AuthECDSA384  uint8 = 10
	AuthECDSA521  uint8 = 11
	AuthSignature uint8 = 14
)

// Notify message types (RFC 7296 §3.10.1 and later RFCs).
const (
	NotifyUnsupportedCritical  uint16 = 1
	NotifyInvalidIKESPI        uint16 = 4
	NotifyInvalidMajorVersion  uint16 = 5
	NotifyInvalidSyntax        uint16 = 7
	NotifyInvalidMessageID     uint16 = 9
	NotifyInvalidSPI           uint16 = 11
	NotifyNoProposalChosen     uint16 = 14
	NotifyInvalidKEPayload     uint16 = 17
	NotifyAuthenticationFailed uint16 = 24
	NotifySinglePairRequired   uint16 = 34
	NotifyNoAdditionalSAs      uint16 = 35
	NotifyInternalAddrFailure  uint16 = 36
	NotifyFailedCPRequired     uint16 = 37
	NotifyTSUnacceptable       uint16 = 38
	NotifyInvalidSelectors     uint16 = 39
	NotifyTemporaryFailure     uint16 = 43
	NotifyChildSANotFound      uint16 = 44

	NotifyInitialContact     uint16 = 16384
	NotifySetWindowSize      uint16 = 16385
	NotifyNATDSourceIP       uint16 = 16388
	NotifyNATDDestinationIP  uint16 = 16389
	NotifyCookie             uint16 = 16390
	NotifyUseTransportMode   uint16 = 16391
	NotifyRekeySA            uint16 = 16393
	NotifyESPTFCPaddingNot   uint16 = 16394
	NotifyMOBIKESupported    uint16 = 16396
	NotifyFragmentationOK    uint16 = 16430
	NotifySignatureHashAlgos uint16 = 16431
)

// Traffic selector types (RFC 7296 §3.13.1).
const (
	TSIPv4Range uint8 = 7
	TSIPv6Range uint8 = 8
)

// Configuration payload types and attributes (RFC 7296 §3.15).
const (
	CFGRequest uint8 = 1
	CFGReply   uint8 = 2
	CFGSet     uint8 = 3
	CFGAck     uint8 = 4

	CPInternalIP4Address uint16 = 1
	CPInternalIP4Netmask uint16 = 2
	CPInternalIP4DNS     uint16 = 3
	CPInternalIP6Address uint16 = 8
	CPInternalIP6DNS     uint16 = 10
)

// Certificate encodings (RFC 7296 §3.6).
const (
	CertX509Signature uint8 = 4
)
