module github.com/scanq/scanq/test/interop

go 1.26.0

require (
	github.com/huaweicloud/huaweicloud-sdk-go-v3 v0.1.207
	github.com/scanq/scanq v0.0.0
)

replace github.com/scanq/scanq => ../..
