package hss

import (
	"fmt"
	"slices"
)

// Regions are the regions the official SDK knows HSS endpoints for.
var Regions = []string{
	"cn-north-1", "cn-north-2", "cn-north-4", "cn-north-9", "cn-north-11", "cn-north-12",
	"cn-east-2", "cn-east-3", "cn-east-4", "cn-east-5",
	"cn-south-1", "cn-south-2", "cn-south-4", "cn-southwest-2", "cn-southwest-3",
	"ap-southeast-1", "ap-southeast-2", "ap-southeast-3", "ap-southeast-4",
	"na-mexico-1", "af-south-1", "sa-brazil-1", "la-south-2", "la-north-2",
	"tr-west-1", "ae-ad-1", "me-east-1", "my-kualalumpur-1", "eu-west-101", "ru-moscow-1",
}

// EndpointForRegion returns the HSS endpoint of a region the SDK knows:
// https://hss.{region}.myhuaweicloud.com, or .myhuaweicloud.eu for
// eu-west-101. For any other region set Config.Endpoint.
func EndpointForRegion(region string) (string, error) {
	if !slices.Contains(Regions, region) {
		return "", fmt.Errorf("hss: unknown region %q: set the endpoint explicitly, or use one of %v", region, Regions)
	}
	domain := "myhuaweicloud.com"
	if region == "eu-west-101" {
		domain = "myhuaweicloud.eu"
	}
	return "https://hss." + region + "." + domain, nil
}
