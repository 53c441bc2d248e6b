// Progress toward a strategy target (docs/strategy-progress.md): hand-computed cases for the
// arithmetic and the trajectory rule. Times are whole years from 2018-01-01 (kMsPerYear each),
// so every slope below is exact.
#include "progress/target_progress.hpp"

#include <gtest/gtest.h>

#include <vector>

using namespace postwatch::aggregator;

namespace {

constexpr std::int64_t kStart = 1'514'764'800'000;  // 2018-01-01
std::int64_t year(double y) { return kStart + static_cast<std::int64_t>(y * kMsPerYear); }

// Defence spending from 1.0 % of GDP in 2018 to 2.0 % in 2024: the path rises 1/6 a year.
TargetSpec two_percent() { return {FigureReading{year(0), 1.0}, 2.0, year(6), true}; }

}  // namespace

TEST(TargetProgress, ExactlyOnThePathIsOnTrack) {
  std::vector<FigureReading> r{{year(1), 1.0 + 1.0 / 6}, {year(2), 1.0 + 2.0 / 6}, {year(3), 1.5}};
  auto p = assess_target(two_percent(), r, year(0), year(3));
  EXPECT_DOUBLE_EQ(*p.current, 1.5);
  EXPECT_DOUBLE_EQ(*p.progress, 0.5);
  EXPECT_NEAR(*p.trend_per_year, 1.0 / 6, 1e-9);
  EXPECT_NEAR(*p.required_per_year, 0.5 / 3, 1e-9);  // 0.5 to go in 3 years
  EXPECT_NEAR(*p.ratio, 1.0, 1e-9);
  EXPECT_EQ(p.points, 4u);  // the baseline and three readings
  EXPECT_EQ(p.status, Trajectory::OnTrack);
}

TEST(TargetProgress, HalfThePaceIsImprovingTooSlowly) {
  // 1/12 a year: 1.25 after three years, 0.75 still to go in three: 1/4 a year needed.
  std::vector<FigureReading> r{{year(1), 1.0 + 1.0 / 12}, {year(2), 1.0 + 2.0 / 12}, {year(3), 1.25}};
  auto p = assess_target(two_percent(), r, year(0), year(3));
  EXPECT_DOUBLE_EQ(*p.progress, 0.25);
  EXPECT_NEAR(*p.trend_per_year, 1.0 / 12, 1e-9);
  EXPECT_NEAR(*p.required_per_year, 0.25, 1e-9);
  EXPECT_NEAR(*p.ratio, 1.0 / 3, 1e-9);
  EXPECT_EQ(p.status, Trajectory::TooSlow);
}

TEST(TargetProgress, AheadOfThePathIsOnTrackAndAMetTargetIsAchieved) {
  // Points (0, 1.0), (1, 1.4), (2, 1.8): slope 0.4; 0.2 to go in 4 years needs 0.05.
  std::vector<FigureReading> r{{year(1), 1.4}, {year(2), 1.8}};
  auto p = assess_target(two_percent(), r, year(0), year(2));
  EXPECT_NEAR(*p.trend_per_year, 0.4, 1e-9);
  EXPECT_NEAR(*p.ratio, 0.4 / 0.05, 1e-9);
  EXPECT_EQ(p.status, Trajectory::OnTrack);
  r.push_back({year(2.5), 2.05});
  p = assess_target(two_percent(), r, year(0), year(2.5));
  EXPECT_EQ(p.status, Trajectory::Achieved);
  EXPECT_NEAR(*p.progress, 1.05, 1e-9);
  EXPECT_FALSE(p.required_per_year);
}

TEST(TargetProgress, PastTheDateNotMetIsAtBestTooSlowMeasuredAgainstThePlannedPath) {
  // 2025, at 1.9 and rising on the planned 1/6 a year: late, so not on track.
  std::vector<FigureReading> r{{year(5), 1.9 - 1.0 / 6}, {year(6), 1.9 - 1.0 / 6 + 1.0 / 6 * 0.5}, {year(7), 1.9}};
  auto p = assess_target(two_percent(), r, year(5), year(7));
  EXPECT_NEAR(*p.required_per_year, 1.0 / 6, 1e-9);  // the planned slope, baseline to target
  EXPECT_EQ(p.status, Trajectory::TooSlow);
  // Falling after the date: moving away.
  std::vector<FigureReading> falling{{year(6), 1.8}, {year(7), 1.6}};
  EXPECT_EQ(assess_target(two_percent(), falling, year(5), year(7)).status, Trajectory::MovingAway);
}

TEST(TargetProgress, FlatIsStagnatingAndFallingIsMovingAway) {
  std::vector<FigureReading> flat{{year(1), 1.2}, {year(2), 1.2}, {year(3), 1.2}};
  auto p = assess_target(two_percent(), flat, year(1), year(3));  // the baseline is outside the period
  EXPECT_EQ(p.points, 3u);
  EXPECT_NEAR(*p.trend_per_year, 0.0, 1e-12);
  EXPECT_EQ(p.status, Trajectory::Stagnating);
  std::vector<FigureReading> falling{{year(1), 1.2}, {year(2), 1.1}, {year(3), 1.0}};
  p = assess_target(two_percent(), falling, year(1), year(3));
  EXPECT_NEAR(*p.trend_per_year, -0.1, 1e-9);
  EXPECT_NEAR(*p.ratio, -0.1 / (1.0 / 3), 1e-9);  // 1.0 to go in 3 years
  EXPECT_EQ(p.status, Trajectory::MovingAway);
}

TEST(TargetProgress, WithoutABaselineTheTrendComesFromTheReadingsAndThereIsNoProgressShare) {
  TargetSpec t{std::nullopt, 90.0, year(4), true};  // 90 % of licences decided in time
  std::vector<FigureReading> r{{year(1), 80.0}, {year(2), 84.0}};
  auto p = assess_target(t, r, year(0), year(2));
  EXPECT_FALSE(p.progress);
  EXPECT_NEAR(*p.trend_per_year, 4.0, 1e-9);
  EXPECT_NEAR(*p.required_per_year, 3.0, 1e-9);  // 6 to go in 2 years
  EXPECT_EQ(p.status, Trajectory::OnTrack);
}

TEST(TargetProgress, ASingleReadingSaysWhereItStandsNotWhereItGoes) {
  TargetSpec t{std::nullopt, 90.0, year(4), true};
  std::vector<FigureReading> one{{year(1), 80.0}};
  auto p = assess_target(t, one, year(0), year(2));
  EXPECT_DOUBLE_EQ(*p.current, 80.0);
  EXPECT_FALSE(p.trend_per_year);
  EXPECT_EQ(p.status, Trajectory::NoData);
  // With a baseline in the period, one reading and the baseline make a trend.
  auto with_baseline = assess_target(two_percent(), std::vector<FigureReading>{{year(3), 1.5}}, year(0), year(3));
  EXPECT_NEAR(*with_baseline.trend_per_year, 0.5 / 3, 1e-9);
  EXPECT_EQ(with_baseline.status, Trajectory::OnTrack);
  // No reading at all: no data, whatever the baseline.
  EXPECT_EQ(assess_target(two_percent(), {}, year(0), year(3)).status, Trajectory::NoData);
  // A reading after `now` is not known yet.
  EXPECT_FALSE(assess_target(t, std::vector<FigureReading>{{year(3), 95.0}}, year(0), year(2)).current);
}

TEST(TargetProgress, ADecreasingIsBetterTargetCountsFallingAsProgress) {
  // Irregular migration pressure from 10 down to 4 by 2024: the path falls 1 a year.
  TargetSpec t{FigureReading{year(0), 10.0}, 4.0, year(6), false};
  std::vector<FigureReading> on_path{{year(1), 9.0}, {year(2), 8.0}};
  auto p = assess_target(t, on_path, year(0), year(2));
  EXPECT_NEAR(*p.progress, 2.0 / 6, 1e-9);
  EXPECT_NEAR(*p.trend_per_year, -1.0, 1e-9);
  EXPECT_NEAR(*p.required_per_year, -1.0, 1e-9);
  EXPECT_EQ(p.status, Trajectory::OnTrack);
  std::vector<FigureReading> rising{{year(1), 10.5}, {year(2), 11.0}};
  EXPECT_EQ(assess_target(t, rising, year(0), year(2)).status, Trajectory::MovingAway);
  EXPECT_EQ(assess_target(t, std::vector<FigureReading>{{year(2), 3.5}}, year(0), year(2)).status,
            Trajectory::Achieved);
}

TEST(TargetProgress, TheNamesAreTheApisAndReadingsMayComeInAnyOrder) {
  EXPECT_EQ(to_string(Trajectory::TooSlow), "too_slow");
  EXPECT_EQ(to_string(Trajectory::MovingAway), "moving_away");
  EXPECT_EQ(to_string(Trajectory::NoData), "no_data");
  std::vector<FigureReading> shuffled{{year(3), 1.5}, {year(1), 1.0 + 1.0 / 6}, {year(2), 1.0 + 2.0 / 6}};
  auto p = assess_target(two_percent(), shuffled, year(0), year(3));
  EXPECT_DOUBLE_EQ(*p.current, 1.5);  // the latest, not the last given
  EXPECT_EQ(p.status, Trajectory::OnTrack);
}
