//! [`YouTubeClient`]: the Data API calls dnp makes, typed, over the shared [`ApiClient`],
//! each counted against the project's daily quota.

use std::sync::Arc;

use dnp_core::{ProviderError, ProviderId};
use reqwest::Method;
use serde::de::DeserializeOwned;

use super::config::YouTubeMusicConfig;
use super::model::{
    ListResponse, PlaylistItemInsert, PlaylistItemInsertSnippet, PlaylistItemResource, PlaylistResource, ResourceId,
    SearchResult, Subscription, SubscriptionInsert, SubscriptionInsertSnippet, Video,
};
use super::quota::{LIST_COST, QuotaMeter, SEARCH_COST, WRITE_COST};
use crate::http::{ApiClient, ApiRequest, ApiResponse, AuthSession, ConfigError};

/// The endpoint templates, as reported in metrics and errors.
pub mod endpoints {
    /// `videos.list?myRating=like`.
    pub const LIKED_VIDEOS: &str = "GET /videos?myRating=like";
    /// `videos.list?id=…`.
    pub const VIDEOS: &str = "GET /videos?id";
    /// `videos.rate`.
    pub const RATE: &str = "POST /videos/rate";
    /// `playlists.list?mine=true`.
    pub const MY_PLAYLISTS: &str = "GET /playlists?mine=true";
    /// `playlists.list?id=…`.
    pub const PLAYLIST: &str = "GET /playlists?id";
    /// `playlistItems.list`.
    pub const PLAYLIST_ITEMS: &str = "GET /playlistItems";
    /// `playlistItems.insert`.
    pub const PLAYLIST_ITEM_INSERT: &str = "POST /playlistItems";
    /// `playlistItems.delete`.
    pub const PLAYLIST_ITEM_DELETE: &str = "DELETE /playlistItems";
    /// `subscriptions.list?mine=true`.
    pub const SUBSCRIPTIONS: &str = "GET /subscriptions?mine=true";
    /// `subscriptions.insert`.
    pub const SUBSCRIBE: &str = "POST /subscriptions";
    /// `subscriptions.delete`.
    pub const UNSUBSCRIBE: &str = "DELETE /subscriptions";
    /// `search.list`.
    pub const SEARCH: &str = "GET /search";
}

/// The largest page of every list dnp reads (`maxResults` at most 50).
pub const PAGE_SIZE: u32 = 50;

/// A rating `videos.rate` sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rating {
    /// Like (the video joins the liked list).
    Like,
    /// No rating (a like is removed).
    None,
    /// Dislike.
    Dislike,
}

impl Rating {
    fn as_str(self) -> &'static str {
        match self {
            Self::Like => "like",
            Self::None => "none",
            Self::Dislike => "dislike",
        }
    }
}

/// Whether `id` can be a YouTube id (video, playlist, playlist item, channel, subscription):
/// 1 to 128 characters of `A-Z a-z 0-9 - _`. Anything else is refused before it is sent.
pub fn is_youtube_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 128 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The Data API calls dnp makes. Cheap to clone; clones share the rate limits, the breaker
/// and the quota meter.
#[derive(Debug, Clone)]
pub struct YouTubeClient {
    api: ApiClient,
    quota: Arc<QuotaMeter>,
}

impl YouTubeClient {
    /// A client of the Data API at `config.api_base_url` with a meter of
    /// `config.daily_quota` units a day.
    ///
    /// # Errors
    /// [`ConfigError`] when the base URL is unusable.
    pub fn new(config: &YouTubeMusicConfig) -> Result<Self, ConfigError> {
        Self::with_meter(config, Arc::new(QuotaMeter::new(config.daily_quota)))
    }

    /// A client of the Data API at `config.api_base_url` that counts against `quota` (one
    /// meter per Google Cloud project; its clock decides when the day ends, which tests fix).
    ///
    /// # Errors
    /// [`ConfigError`] when the base URL is unusable.
    pub fn with_meter(config: &YouTubeMusicConfig, quota: Arc<QuotaMeter>) -> Result<Self, ConfigError> {
        let provider = ProviderId::new(ProviderId::YOUTUBE_MUSIC)
            .map_err(|e| ConfigError::Invalid { name: "provider id", reason: e.to_string() })?;
        let api = ApiClient::new(provider, &config.api_base_url, config.http.clone())?;
        Ok(Self::with_api(api, quota))
    }

    /// A client over an existing [`ApiClient`] (a scripted transport) and quota meter (one
    /// per Google Cloud project).
    pub fn with_api(api: ApiClient, quota: Arc<QuotaMeter>) -> Self {
        Self { api, quota }
    }

    /// The HTTP client.
    pub fn api(&self) -> &ApiClient {
        &self.api
    }

    /// The quota meter.
    pub fn quota(&self) -> &QuotaMeter {
        &self.quota
    }

    fn provider(&self) -> &ProviderId {
        self.api.provider()
    }

    fn check_id(&self, endpoint: &str, what: &str, id: &str) -> Result<(), ProviderError> {
        if is_youtube_id(id) {
            Ok(())
        } else {
            Err(ProviderError::InvalidInput {
                provider: self.provider().clone(),
                endpoint: endpoint.to_owned(),
                detail: format!("{:?} is not a YouTube {what} id", id.chars().take(64).collect::<String>()),
            })
        }
    }

    /// Sends `request` when `cost` units are left today, counting them; a `quotaExceeded`
    /// answer marks the day spent. Either way the error says how long until the reset.
    async fn send(&self, auth: &AuthSession<'_>, cost: u64, request: ApiRequest) -> Result<ApiResponse, ProviderError> {
        let now = self.quota.now();
        if let Err(until_reset) = self.quota.reserve_at(now, cost) {
            tracing::info!(endpoint = request.endpoint(), cost, "daily quota spent; not sending");
            return Err(ProviderError::QuotaExceeded {
                provider: self.provider().clone(),
                retry_after: Some(until_reset),
            });
        }
        match self.api.send(Some(auth), &request).await {
            Ok(response) => Ok(response),
            Err(ProviderError::QuotaExceeded { provider, .. }) => {
                let until_reset = self.quota.exhaust_at(self.quota.now());
                tracing::warn!(endpoint = request.endpoint(), "the service says the daily quota is spent");
                Err(ProviderError::QuotaExceeded { provider, retry_after: Some(until_reset) })
            }
            Err(err @ ProviderError::ProviderUnavailable { .. }) => {
                // The breaker refused it: nothing reached the service.
                self.quota.refund_at(now, cost);
                Err(err)
            }
            Err(err) => Err(err),
        }
    }

    async fn json<T: DeserializeOwned>(
        &self,
        auth: &AuthSession<'_>,
        cost: u64,
        request: ApiRequest,
    ) -> Result<T, ProviderError> {
        self.send(auth, cost, request).await?.json()
    }

    fn page(request: ApiRequest, page_token: Option<&str>) -> ApiRequest {
        let request = request.query("maxResults", PAGE_SIZE);
        match page_token {
            Some(token) => request.query("pageToken", token),
            None => request,
        }
    }

    /// One page of the videos the user rated "like" (`videos.list?myRating=like`, with
    /// `snippet` and `contentDetails`).
    pub async fn liked_videos(
        &self,
        auth: &AuthSession<'_>,
        page_token: Option<&str>,
    ) -> Result<ListResponse<Video>, ProviderError> {
        let request = ApiRequest::get(endpoints::LIKED_VIDEOS, "/videos")
            .query("part", "snippet,contentDetails")
            .query("myRating", "like");
        self.json(auth, LIST_COST, Self::page(request, page_token)).await
    }

    /// The durations (`contentDetails`) of up to 50 videos (`videos.list?id=…`).
    pub async fn videos(&self, auth: &AuthSession<'_>, ids: &[String]) -> Result<ListResponse<Video>, ProviderError> {
        for id in ids {
            self.check_id(endpoints::VIDEOS, "video", id)?;
        }
        let request = ApiRequest::get(endpoints::VIDEOS, "/videos")
            .query("part", "contentDetails")
            .query("id", ids.join(","))
            .query("maxResults", PAGE_SIZE);
        self.json(auth, LIST_COST, request).await
    }

    /// One page of the user's own playlists (`playlists.list?mine=true`).
    pub async fn my_playlists(
        &self,
        auth: &AuthSession<'_>,
        page_token: Option<&str>,
    ) -> Result<ListResponse<PlaylistResource>, ProviderError> {
        let request = ApiRequest::get(endpoints::MY_PLAYLISTS, "/playlists")
            .query("part", "snippet,contentDetails")
            .query("mine", "true");
        self.json(auth, LIST_COST, Self::page(request, page_token)).await
    }

    /// One playlist's item count (`playlists.list?id=…&part=contentDetails`); `NotFound`
    /// when there is no such playlist.
    pub async fn playlist_item_count(&self, auth: &AuthSession<'_>, playlist_id: &str) -> Result<u32, ProviderError> {
        self.check_id(endpoints::PLAYLIST, "playlist", playlist_id)?;
        let request =
            ApiRequest::get(endpoints::PLAYLIST, "/playlists").query("part", "contentDetails").query("id", playlist_id);
        let list: ListResponse<PlaylistResource> = self.json(auth, LIST_COST, request).await?;
        list.items
            .into_iter()
            .find(|p| p.id == playlist_id)
            .map(|p| p.content_details.map_or(0, |c| c.item_count))
            .ok_or_else(|| ProviderError::NotFound {
                provider: self.provider().clone(),
                what: format!("playlist {playlist_id}"),
            })
    }

    /// One page of a playlist's items (`playlistItems.list`).
    pub async fn playlist_items(
        &self,
        auth: &AuthSession<'_>,
        playlist_id: &str,
        page_token: Option<&str>,
    ) -> Result<ListResponse<PlaylistItemResource>, ProviderError> {
        self.check_id(endpoints::PLAYLIST_ITEMS, "playlist", playlist_id)?;
        let request = ApiRequest::get(endpoints::PLAYLIST_ITEMS, "/playlistItems")
            .query("part", "snippet")
            .query("playlistId", playlist_id);
        self.json(auth, LIST_COST, Self::page(request, page_token)).await
    }

    /// One page of the user's subscriptions (`subscriptions.list?mine=true`), in
    /// alphabetical order (stable while paging).
    pub async fn subscriptions(
        &self,
        auth: &AuthSession<'_>,
        page_token: Option<&str>,
    ) -> Result<ListResponse<Subscription>, ProviderError> {
        let request = ApiRequest::get(endpoints::SUBSCRIPTIONS, "/subscriptions")
            .query("part", "snippet")
            .query("mine", "true")
            .query("order", "alphabetical");
        self.json(auth, LIST_COST, Self::page(request, page_token)).await
    }

    /// The user's subscription to `channel_id`, if any
    /// (`subscriptions.list?mine=true&forChannelId=…`).
    pub async fn subscription_to(
        &self,
        auth: &AuthSession<'_>,
        channel_id: &str,
    ) -> Result<Option<Subscription>, ProviderError> {
        self.check_id(endpoints::SUBSCRIPTIONS, "channel", channel_id)?;
        let request = ApiRequest::get(endpoints::SUBSCRIPTIONS, "/subscriptions")
            .query("part", "snippet")
            .query("mine", "true")
            .query("forChannelId", channel_id);
        let list: ListResponse<Subscription> = self.json(auth, LIST_COST, request).await?;
        Ok(list
            .items
            .into_iter()
            .find(|s| s.snippet.as_ref().and_then(|sn| sn.resource_id.channel_id.as_deref()) == Some(channel_id)))
    }

    /// `videos.rate?id=…&rating=…` (204).
    pub async fn rate(&self, auth: &AuthSession<'_>, video_id: &str, rating: Rating) -> Result<(), ProviderError> {
        self.check_id(endpoints::RATE, "video", video_id)?;
        let request = ApiRequest::new(Method::POST, endpoints::RATE, "/videos/rate")
            .query("id", video_id)
            .query("rating", rating.as_str());
        self.send(auth, WRITE_COST, request).await.map(drop)
    }

    /// `playlistItems.delete?id=…` (204).
    pub async fn delete_playlist_item(&self, auth: &AuthSession<'_>, item_id: &str) -> Result<(), ProviderError> {
        self.check_id(endpoints::PLAYLIST_ITEM_DELETE, "playlist item", item_id)?;
        let request =
            ApiRequest::new(Method::DELETE, endpoints::PLAYLIST_ITEM_DELETE, "/playlistItems").query("id", item_id);
        self.send(auth, WRITE_COST, request).await.map(drop)
    }

    /// `playlistItems.insert?part=snippet` of `video_id` into `playlist_id` at `position`
    /// (appended when `None`); returns the new playlist item.
    pub async fn insert_playlist_item(
        &self,
        auth: &AuthSession<'_>,
        playlist_id: &str,
        video_id: &str,
        position: Option<u32>,
    ) -> Result<PlaylistItemResource, ProviderError> {
        self.check_id(endpoints::PLAYLIST_ITEM_INSERT, "playlist", playlist_id)?;
        self.check_id(endpoints::PLAYLIST_ITEM_INSERT, "video", video_id)?;
        let body = PlaylistItemInsert {
            snippet: PlaylistItemInsertSnippet {
                playlist_id: playlist_id.to_owned(),
                resource_id: ResourceId {
                    kind: "youtube#video".into(),
                    video_id: Some(video_id.to_owned()),
                    channel_id: None,
                },
                position,
            },
        };
        let request = ApiRequest::new(Method::POST, endpoints::PLAYLIST_ITEM_INSERT, "/playlistItems")
            .query("part", "snippet")
            .json(&body)
            .not_idempotent();
        self.json(auth, WRITE_COST, request).await
    }

    /// `subscriptions.delete?id=…` (204).
    pub async fn delete_subscription(
        &self,
        auth: &AuthSession<'_>,
        subscription_id: &str,
    ) -> Result<(), ProviderError> {
        self.check_id(endpoints::UNSUBSCRIBE, "subscription", subscription_id)?;
        let request =
            ApiRequest::new(Method::DELETE, endpoints::UNSUBSCRIBE, "/subscriptions").query("id", subscription_id);
        self.send(auth, WRITE_COST, request).await.map(drop)
    }

    /// `subscriptions.insert?part=snippet` to `channel_id`; returns the new subscription.
    pub async fn subscribe(&self, auth: &AuthSession<'_>, channel_id: &str) -> Result<Subscription, ProviderError> {
        self.check_id(endpoints::SUBSCRIBE, "channel", channel_id)?;
        let body = SubscriptionInsert {
            snippet: SubscriptionInsertSnippet {
                resource_id: ResourceId {
                    kind: "youtube#channel".into(),
                    video_id: None,
                    channel_id: Some(channel_id.to_owned()),
                },
            },
        };
        let request =
            ApiRequest::new(Method::POST, endpoints::SUBSCRIBE, "/subscriptions").query("part", "snippet").json(&body);
        self.json(auth, WRITE_COST, request).await
    }

    /// `search.list?type=channel&q=…` (100 units): channels named like `query`.
    pub async fn search_channels(
        &self,
        auth: &AuthSession<'_>,
        query: &str,
        max_results: u32,
    ) -> Result<ListResponse<SearchResult>, ProviderError> {
        let request = ApiRequest::get(endpoints::SEARCH, "/search")
            .query("part", "snippet")
            .query("type", "channel")
            .query("q", query)
            .query("maxResults", max_results.clamp(1, PAGE_SIZE));
        self.json(auth, SEARCH_COST, request).await
    }
}
