package lakeio

import "github.com/flowrun/flowrun/dsl/spec"

// S3Field is the `s3:` settings block of an s3:// path, one declaration for
// the lake sink and source so their docs and decoding cannot drift apart.
func S3Field() *spec.Field {
	f := spec.Obj(
		spec.F("endpoint", spec.String, "Endpoint URL of an S3-compatible store (default: AWS, or AWS_ENDPOINT_URL_S3).").Ex("http://127.0.0.1:8333"),
		spec.F("region", spec.String, "Region (default AWS_REGION, else us-east-1)."),
		spec.F("path_style", spec.Bool, "Put the bucket in the path instead of the host name (always so with an endpoint).").Def(false),
		spec.F("access_key", spec.String, "Access key id (default AWS_ACCESS_KEY_ID or the AWS config files; anonymous with an endpoint and no key)."),
		spec.F("secret_key", spec.String, "Secret access key (default AWS_SECRET_ACCESS_KEY)."),
	)
	f.Name, f.Doc = "s3", "S3 settings for an s3:// path."
	return f
}

// DecodeS3 reads an `s3:` block declared by S3Field (nil: defaults).
func DecodeS3(v *spec.Value) S3Options {
	if v == nil {
		return S3Options{}
	}
	return S3Options{Endpoint: v.String("endpoint"), Region: v.String("region"), PathStyle: v.Boolean("path_style"),
		AccessKey: v.String("access_key"), SecretKey: v.String("secret_key")}
}
