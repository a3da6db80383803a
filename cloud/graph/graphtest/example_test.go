package graphtest_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/smimesync/go-smimesync/cloud/azauth/azauthtest"
	"github.com/smimesync/go-smimesync/cloud/graph/graphtest"
)

func ExampleNewServer() {
	tokens := azauthtest.NewServer()
	defer tokens.Close()
	srv := graphtest.NewServer(graphtest.Config{
		Tokens: tokens,
		Users:  []graphtest.User{{ID: "u1", UserPrincipalName: "alice@contoso.com", OnPremisesSyncEnabled: true}},
	})
	defer srv.Close()

	// A client asks tokens for srv.URL + "/.default"; here one is minted.
	token := tokens.Issue(azauthtest.Claims{Audience: srv.URL, TenantID: "t", AppID: "a", Expires: time.Now().Add(time.Hour).Unix()})
	req, _ := http.NewRequest("GET", srv.URL+"/v1.0/users?$filter=userPrincipalName%20eq%20'alice@contoso.com'&$select=id,onPremisesSyncEnabled", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := srv.Client().Do(req)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer resp.Body.Close()
	var page struct {
		Value []struct {
			ID     string `json:"id"`
			Synced bool   `json:"onPremisesSyncEnabled"`
		} `json:"value"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&page)
	fmt.Println(resp.StatusCode, page.Value[0].ID, page.Value[0].Synced)
	// Output: 200 u1 true
}
